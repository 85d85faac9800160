#include "ringmaster/admin/endpoints.h"

#include <string>

namespace ringmaster::admin {

Response json_response(const Json& body, int status) {
  return Response{status, "application/json", body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"};
}

Response purge_cache(cache::Cache* c, const Request& req) {
  if (c == nullptr) return {409, "text/plain", "cache disabled (--cache-bytes 0)\n"};
  if (req.query.empty()) {
    c->invalidate_all();
    return json_response(Json{{"purged", "all"}});
  }
  if (req.query.rfind("path=", 0) != 0 || req.query.size() == 5 || req.query[5] != '/') {
    return {400, "text/plain", "expected ?path=/some/path\n"};
  }
  std::string path = req.query.substr(5);
  if (path.find_first_of("&%") != std::string::npos) return {400, "text/plain", "path must be plain\n"};
  size_t n = c->purge_path(path);
  return json_response(Json{{"purged", n}});
}

}  // namespace ringmaster::admin
