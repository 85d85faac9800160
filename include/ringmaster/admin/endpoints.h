// admin endpoints' bodies, built off the request path on the admin thread (server.h). JSON
// is written by one library, nlohmann::json (ordered: keys stay in the order we add them),
// never by hand.
#pragma once

#include <nlohmann/json.hpp>

#include "ringmaster/admin/server.h"
#include "ringmaster/cache/cache.h"

namespace ringmaster::admin {

using Json = nlohmann::ordered_json;

// `body` as one line of JSON and a newline. Strings that are not UTF-8 (a name read from
// ZooKeeper, say) have their bad bytes replaced rather than failing the answer.
Response json_response(const Json& body, int status = 200);

// POST /cache/purge on one cache: everything, or ?path=/x for every cached variant of one
// path. 409 when `c` is null (that cache is off).
Response purge_cache(cache::Cache* c, const Request& req);

}  // namespace ringmaster::admin
