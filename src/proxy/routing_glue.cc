// Routing on the request path: which service a request belongs to, and each service's
// balancer as this reactor sees it (README "Services").
#include "ringmaster/base/log.h"
#include "ringmaster/base/check.h"
#include "worker.h"

namespace ringmaster::proxy {
namespace {

// The answer to a request no service matches: short, and it never reaches a backend.
constexpr std::string_view kNoServiceBody = "404 Not Found: no service matches this request\n";

}  // namespace

void Worker::adopt_routes() {
  // The snapshots this turn lets go of stay alive until close_unrouted_upstreams has let go
  // of every pooled and live connection pointing into their targets' state: this reactor
  // may hold their last reference (the RCU frees an old table once every reactor moved on,
  // and the coordinator forgets a removed source's targets once no table routes to it), and
  // a connection's `target` is a plain pointer. (Found by ASan in the reload-under-load
  // test: a pooled connection to a removed source's target, closed after its state was
  // freed.)
  std::vector<std::shared_ptr<const upstream::TargetSnapshot>> released;
  bool retired_gone = false;
  // Right after the ring was submitted, so no prepared connect still points at a retired
  // service's connect timeout.
  if (!retired_services_.empty()) {
    std::erase_if(retired_services_, [&](const std::unique_ptr<ServiceLocal>& local) {
      if (local->clients != 0) return false;
      released.push_back(local->targets);
      retired_gone = true;
      return true;
    });
  }
  const upstream::RoutingTable* next = routes_->load();
  if (next == table_) {
    // Targets only a retired service still routed to are now routed by none.
    if (retired_gone) close_unrouted_upstreams();
    return;
  }
  table_ = next;
  for (auto& [runtime, local] : services_) local->current = false;
  for (const upstream::RoutedService& s : next->services) {
    std::unique_ptr<ServiceLocal>& local = services_[s.runtime.get()];
    if (local && local->limits != s.limits) {
      // A reload changed its timeouts or limits: requests routed from now on get a new
      // ServiceLocal; those routed before keep the old one (their deadlines, their queue
      // limit) until they finish. Connection counts live in the targets' slots, so the new
      // limit applies at once to the connections the old requests hold.
      released.push_back(local->targets);
      if (local->clients > 0) retired_services_.push_back(std::move(local));
      local.reset();
    }
    if (!local) {
      local = std::make_unique<ServiceLocal>(s.runtime, s.limits, static_cast<unsigned>(index_), options_.threads,
                                             balancer_seed_, &upstream_timer_lists_, &queue_timer_lists_);
    }
    local->current = true;
    if (local->targets != s.targets) {
      released.push_back(std::move(local->targets));
      local->targets = s.targets;
      local->balancer.adopt(s.targets.get());
    }
  }
  // A service whose limits changed keeps its requests on its old ServiceLocal, but picks (for
  // a failover) among its current targets.
  for (const std::unique_ptr<ServiceLocal>& old : retired_services_) {
    auto it = services_.find(old->runtime.get());
    if (it == services_.end() || !it->second->current || old->targets == it->second->targets) continue;
    released.push_back(std::move(old->targets));
    old->targets = it->second->targets;
    old->balancer.adopt(old->targets.get());
  }
  // A service that left the table is forgotten once no connection's request belongs to it.
  std::erase_if(services_, [&](const auto& entry) {
    if (entry.second->current || entry.second->clients != 0) return false;
    released.push_back(entry.second->targets);
    return true;
  });
  close_unrouted_upstreams();
  // `released` goes here, after the last pointer into it.
}

void Worker::close_unrouted_upstreams() {
  // Connections to targets no service of this reactor routes to any more: idle ones close
  // now, busy ones finish their exchange and close afterwards; none keeps a pointer into
  // the state the old snapshot owned.
  std::unordered_map<const upstream::TargetState*, bool> present;
  for (const auto& [runtime, local] : services_) {
    for (const upstream::Target& t : local->targets->targets) present[t.state.get()] = true;
  }
  for (const std::unique_ptr<ServiceLocal>& local : retired_services_) {
    for (const upstream::Target& t : local->targets->targets) present[t.state.get()] = true;
  }
  for (auto it = idle_pools_.begin(); it != idle_pools_.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    std::vector<IdleConn> conns;
    conns.swap(it->second);
    it = idle_pools_.erase(it);
    for (const IdleConn& e : conns) close_upstream(e.conn);
  }
  for (UpstreamConn* u : live_upstreams_) {
    if (u->target != nullptr && !present.count(u->target)) forget_target(u);
  }
  // Requests waiting for a target that left pick again among those that remain.
  std::vector<ClientConn*> orphans;
  for (auto it = wait_queues_.begin(); it != wait_queues_.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    size_t first = orphans.size();
    for (ClientConn* c = it->second.head; c != nullptr; c = c->queue_next) orphans.push_back(c);
    for (size_t i = first; i < orphans.size(); ++i) unlink_queued(orphans[i]);
    it = wait_queues_.erase(it);
  }
  for (ClientConn* c : orphans) {
    std::unique_ptr<base::ByteBuffer> bytes = std::move(c->queued_bytes);
    client_timers_.arm(&c->timer, now_ms_);
    start_attempt(c, bytes.get());
    if (c->ex.state() != ClientState::closed) pump_client(c);
  }
}

bool Worker::route_request(ClientConn* c) {
  const http::RequestHead& head = c->parser->head();
  const upstream::RoutedService* routed = table_ != nullptr ? table_->route(head.host, head.target) : nullptr;
  ServiceLocal* local = nullptr;
  if (routed != nullptr) {
    auto it = services_.find(routed->runtime.get());
    if (it != services_.end()) local = it->second.get();
  }
  if (local != c->service) {
    release_service(c);
    c->service = local;
    if (local != nullptr) ++local->clients;
  }
  if (local == nullptr) {
    answer_no_service(c);
    return false;
  }
  local->slot->requests.add();
  // body-bytes-max is the service's (the parser has no limit of its own: ServerOptions).
  const uint64_t body_max = local->limits.body_bytes_max;
  if (head.framing == http::BodyFraming::content_length && head.content_length > body_max) {
    stats_.rejected.add();
    c->ex.on_body_rejected();  // (no answer started yet: the 413 goes out, then close)
    local_response(c, 413);
    return false;
  }
  c->parser->set_body_bytes_max(body_max);  // a chunked body is counted as it arrives
  return true;
}

void Worker::release_service(ClientConn* c) {
  if (c->service == nullptr) return;
  RM_CHECK(c->service->clients > 0);
  --c->service->clients;
  c->service = nullptr;
}

void Worker::answer_no_service(ClientConn* c) {
  stats_.unrouted.add();
  c->status = 404;
  // Unread request body bytes make the connection's next request boundary unknown: close.
  c->ex.close_unless_request_complete();
  base::ByteBuffer& out = c->out.pending();
  http::LocalResponse answer;
  answer.status = 404;
  answer.body = kNoServiceBody;
  answer.close = !c->ex.keep_alive();
  answer.head_only = c->method == http::Method::head;
  http::write_response(answer, out);
  c->ex.on_whole_response();
  kick_client_send(c);
  finish_exchange(c);
}

}  // namespace ringmaster::proxy
