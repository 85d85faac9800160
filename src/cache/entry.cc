// Stored responses: building one while the response streams, counting references to it,
// and its age. An Entry is immutable once finish() hands it out, so any number of reactors
// read it without locks; the last EntryRef to go deletes it.
#include <string>
#include <utility>

#include "cache/semantics.h"
#include "ringmaster/base/check.h"
#include "ringmaster/base/reason_phrase.h"
#include "ringmaster/cache/cache.h"
#include "ringmaster/http/wire.h"

namespace ringmaster::cache {

using detail::iequals;

size_t Entry::charge() const {
  size_t bytes = overhead_bytes + key.size() + head.size() + body.size() + etag.size() + last_modified.size();
  for (const std::string& s : vary_names) bytes += s.size();
  for (const std::string& s : vary_values) bytes += s.size();
  return bytes;
}

// ---- References ----

EntryRef& EntryRef::operator=(EntryRef&& o) noexcept {
  if (this != &o) {
    reset();
    entry_ = o.entry_;
    o.entry_ = nullptr;
  }
  return *this;
}

void EntryRef::reset() {
  Entry* e = entry_;
  entry_ = nullptr;
  // acq_rel: the last holder must see every other holder's reads finished before it deletes.
  if (e != nullptr && e->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete e;
}

EntryRef EntryRef::share() const {
  if (entry_ == nullptr) return EntryRef();
  entry_->refs.fetch_add(1, std::memory_order_relaxed);
  return EntryRef(entry_);
}

Entry* EntryRef::release() {
  Entry* e = entry_;
  entry_ = nullptr;
  return e;
}

// ---- Age and freshness (RFC 9111 4.2.3, with the Age header as the initial age) ----

int64_t age_seconds(const Entry& e, int64_t now_ms) {
  int64_t age_ms = e.initial_age_ms + (now_ms - e.stored_at_ms);
  return age_ms > 0 ? age_ms / 1000 : 0;
}

bool is_fresh(const Entry& e, int64_t now_ms) {
  return e.initial_age_ms + (now_ms - e.stored_at_ms) < e.freshness_ms;
}

int64_t staleness_ms(const Entry& e, int64_t now_ms) {
  return e.initial_age_ms + (now_ms - e.stored_at_ms) - e.freshness_ms;
}

bool may_serve_stale(const Entry& e, int64_t now_ms, bool disconnected) {
  if (e.stale_forbidden) return false;
  int64_t stale = staleness_ms(e, now_ms);
  return (disconnected && stale < e.stale_window_ms) || (e.stale_if_error_ms >= 0 && stale < e.stale_if_error_ms);
}

bool may_serve_while_revalidating(const Entry& e, int64_t now_ms) {
  return !e.stale_forbidden && e.stale_while_revalidate_ms >= 0 && staleness_ms(e, now_ms) < e.stale_while_revalidate_ms;
}

bool worth_keeping_stale(const Entry& e, int64_t now_ms) {
  return revalidatable(e) || may_serve_stale(e, now_ms, true) || may_serve_while_revalidating(e, now_ms);
}

// ---- Reason phrases (RFC 9110 section 15) ----

namespace detail {

std::string_view reason_phrase(uint16_t status) { return base::reason_phrase(status); }

}  // namespace detail

// ---- Building ----

namespace {

// Fields a cache never replays: hop-by-hop (RFC 9110 7.6.1), framing (the proxy writes its
// own Content-Length), Age (recomputed per hit), Set-Cookie (never stored anyway) and
// Surrogate-Control (addressed to us, the surrogate: not to replay to clients).
bool never_stored(std::string_view name) {
  static constexpr std::string_view kNames[] = {"age",     "content-length", "transfer-encoding", "connection",
                                                "keep-alive", "proxy-connection", "te",           "trailer",
                                                "upgrade", "set-cookie",     "surrogate-control"};
  for (std::string_view n : kNames) {
    if (iequals(name, n)) return true;
  }
  return false;
}

// Whether a Connection field of the response nominates `name` as hop-by-hop.
bool nominated_by_connection(const Fields& fields, std::string_view name) {
  bool found = false;
  for (const HeaderField& f : fields) {
    if (!iequals(f.name, "connection")) continue;
    detail::for_each_element(f.value, [&](std::string_view option) {
      if (iequals(option, name)) found = true;
    });
  }
  return found;
}

bool printable_reason(std::string_view reason) {
  for (char c : reason) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) return false;
  }
  return true;
}

}  // namespace

EntryBuilder::EntryBuilder(std::string key, uint64_t key_hash, const RequestInfo& request, uint16_t status,
                           const Fields& response_fields, const StoreDecision& decision, size_t object_bytes_max,
                           std::string_view reason)
    : entry_(std::make_unique<Entry>()), object_bytes_max_(object_bytes_max) {
  Entry& e = *entry_;
  e.key = std::move(key);
  e.key_hash = key_hash;
  e.status = status;
  e.freshness_ms = decision.freshness_ms;
  e.initial_age_ms = decision.initial_age_ms;
  if (!decision.store) abandoned_ = true;

  bool has_connection = false;
  for (const HeaderField& f : response_fields) {
    if (iequals(f.name, "connection")) has_connection = true;
    if (iequals(f.name, "vary")) {
      detail::for_each_element(f.value, [&](std::string_view name) {
        if (name == "*") abandoned_ = true;  // classify_response refuses these; be safe anyway
        std::string lower;
        lower.reserve(name.size());
        for (char c : name) lower.push_back(detail::ascii_lower(c));
        for (const std::string& known : e.vary_names) {
          if (known == lower) return;
        }
        e.vary_names.push_back(std::move(lower));
      });
    } else if (iequals(f.name, "cache-control")) {
      detail::for_each_directive(f.value, [&](const detail::Directive& d) {
        if (iequals(d.name, "must-revalidate") || iequals(d.name, "proxy-revalidate") ||
            iequals(d.name, "s-maxage") || iequals(d.name, "no-cache")) {
          e.stale_forbidden = true;
        } else if (iequals(d.name, "stale-if-error") && d.has_argument) {
          int64_t s = 0;
          if (detail::parse_delta_seconds(d.argument, s)) e.stale_if_error_ms = s * 1000;
        } else if (iequals(d.name, "stale-while-revalidate") && d.has_argument) {
          int64_t s = 0;
          if (detail::parse_delta_seconds(d.argument, s)) e.stale_while_revalidate_ms = s * 1000;
        }
      });
    } else if (iequals(f.name, "etag")) {
      if (e.etag.empty()) e.etag = detail::trim(f.value);
    } else if (iequals(f.name, "last-modified")) {
      if (e.last_modified.empty()) e.last_modified = detail::trim(f.value);
    }
  }
  e.vary_values.resize(e.vary_names.size());
  for (size_t i = 0; i < e.vary_names.size(); ++i) {
    detail::join_field_values(request.fields, e.vary_names[i], e.vary_values[i]);
  }

  if (reason.empty() || !printable_reason(reason)) reason = detail::reason_phrase(status);
  http::wire::status_line(e.head, status, reason);
  for (const HeaderField& f : response_fields) {
    if (never_stored(f.name)) continue;
    if (has_connection && nominated_by_connection(response_fields, f.name)) continue;
    http::wire::field(e.head, f.name, f.value);
  }
  if (abandoned_) e.head.clear();
}

bool EntryBuilder::append_body(const char* data, size_t len) {
  if (abandoned_) return false;
  std::string& body = entry_->body;
  if (len > object_bytes_max_ || body.size() > object_bytes_max_ - len) {
    abandoned_ = true;
    std::string().swap(body);  // give the memory back now, the response may stream on for long
    return false;
  }
  body.append(data, len);
  return true;
}

// ---- Freshening with a 304 (RFC 9111 4.3.4, 3.2) ----

namespace {

// Fields a 304 does not update: they describe the stored body (the 304 has none), or, for
// ETag, the validator that just matched.
bool kept_on_304(std::string_view name) {
  static constexpr std::string_view kNames[] = {"content-length", "content-encoding", "content-range", "content-md5",
                                                "etag"};
  for (std::string_view n : kNames) {
    if (iequals(name, n)) return true;
  }
  return false;
}

bool has_field(const Fields& fields, std::string_view name) {
  for (const HeaderField& f : fields) {
    if (iequals(f.name, name)) return true;
  }
  return false;
}

}  // namespace

Freshened freshen(const Entry& stored, const RequestInfo& request, const Fields& not_modified_fields,
                  bool request_has_authorization, int64_t default_ttl_ms, int64_t now_unix_ms, int64_t now_ms) {
  Fields merged;
  detail::for_each_stored_field(stored, [&](std::string_view, std::string_view name, std::string_view value) {
    if (kept_on_304(name) || !has_field(not_modified_fields, name)) merged.push_back(HeaderField{name, value});
  });
  for (const HeaderField& f : not_modified_fields) {
    if (!kept_on_304(f.name)) merged.push_back(f);
  }
  StoreDecision decision =
      classify_response(stored.status, merged, request_has_authorization, default_ttl_ms, now_unix_ms);
  Freshened out;
  out.storable = decision.store;
  decision.store = true;  // built either way: this request is answered from it
  // The stored status line's reason phrase: "HTTP/1.1 200 <reason>\r\n".
  std::string_view status_line = std::string_view(stored.head).substr(0, stored.head.find("\r\n"));
  std::string_view reason = status_line.size() > 13 ? status_line.substr(13) : std::string_view();
  EntryBuilder builder(stored.key, stored.key_hash, request, stored.status, merged, decision, stored.body.size(),
                       reason);
  builder.append_body(stored.body.data(), stored.body.size());
  out.entry = builder.finish(now_ms);
  if (!out.entry) out.storable = false;
  return out;
}

EntryRef EntryBuilder::finish(int64_t now_ms) {
  if (abandoned_ || entry_ == nullptr) return EntryRef();
  Entry& e = *entry_;
  e.stored_at_ms = now_ms;
  // The body grew by doubling: trim the slack so what we charge is what we hold.
  if (e.body.capacity() - e.body.size() > 4096 + e.body.size() / 16) e.body.shrink_to_fit();
  return EntryRef(entry_.release());
}

}  // namespace ringmaster::cache
