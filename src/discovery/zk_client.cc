// The parts of zk_client.h that are plain code, with no ZooKeeper client behind them: the
// names of codes, states and events, and the path helpers made of create() calls (so a fake
// ZkClient gets them too).
#include "discovery/zk_client.h"

#include <string>

namespace ringmaster::discovery {

std::string zk_code_name(ZkCode code) {
  switch (code) {
    case ZkCode::ok: return "OK";
    case ZkCode::system_error: return "SYSTEMERROR";
    case ZkCode::runtime_inconsistency: return "RUNTIMEINCONSISTENCY";
    case ZkCode::data_inconsistency: return "DATAINCONSISTENCY";
    case ZkCode::connection_loss: return "CONNECTIONLOSS";
    case ZkCode::marshalling_error: return "MARSHALLINGERROR";
    case ZkCode::unimplemented: return "UNIMPLEMENTED";
    case ZkCode::operation_timeout: return "OPERATIONTIMEOUT";
    case ZkCode::bad_arguments: return "BADARGUMENTS";
    case ZkCode::invalid_state: return "INVALIDSTATE";
    case ZkCode::api_error: return "APIERROR";
    case ZkCode::no_node: return "NONODE";
    case ZkCode::no_auth: return "NOAUTH";
    case ZkCode::bad_version: return "BADVERSION";
    case ZkCode::no_children_for_ephemerals: return "NOCHILDRENFOREPHEMERALS";
    case ZkCode::node_exists: return "NODEEXISTS";
    case ZkCode::not_empty: return "NOTEMPTY";
    case ZkCode::session_expired: return "SESSIONEXPIRED";
    case ZkCode::invalid_callback: return "INVALIDCALLBACK";
    case ZkCode::invalid_acl: return "INVALIDACL";
    case ZkCode::auth_failed: return "AUTHFAILED";
    case ZkCode::closing: return "CLOSING";
    case ZkCode::nothing: return "NOTHING";
    case ZkCode::session_moved: return "SESSIONMOVED";
    case ZkCode::not_read_only: return "NOTREADONLY";
    case ZkCode::ephemeral_on_local_session: return "EPHEMERALONLOCALSESSION";
    case ZkCode::no_watcher: return "NOWATCHER";
    case ZkCode::reconfig_disabled: return "RECONFIGDISABLED";
    case ZkCode::session_closed_require_sasl_auth: return "SESSIONCLOSEDREQUIRESASLAUTH";
    case ZkCode::throttled: return "THROTTLEDOP";
  }
  return "ERROR(" + std::to_string(static_cast<int>(code)) + ")";
}

bool zk_connection_problem(ZkCode code) {
  switch (code) {
    case ZkCode::connection_loss:
    case ZkCode::operation_timeout:
    case ZkCode::invalid_state:
    case ZkCode::session_expired:
    case ZkCode::session_moved:
    case ZkCode::closing:
    case ZkCode::auth_failed:
    case ZkCode::throttled:
      return true;
    default:
      return false;
  }
}

const char* session_state_name(SessionState state) {
  switch (state) {
    case SessionState::closed: return "closed";
    case SessionState::connecting: return "connecting";
    case SessionState::connected: return "connected";
    case SessionState::expired: return "expired";
    case SessionState::auth_failed: return "auth_failed";
  }
  return "?";
}

const char* event_type_name(ZkEvent::Type type) {
  switch (type) {
    case ZkEvent::Type::session: return "session";
    case ZkEvent::Type::created: return "created";
    case ZkEvent::Type::deleted: return "deleted";
    case ZkEvent::Type::changed: return "changed";
    case ZkEvent::Type::child: return "child";
    case ZkEvent::Type::not_watching: return "not_watching";
    case ZkEvent::Type::lost_events: return "lost_events";
  }
  return "?";
}

ZkCode ZkClient::create_parents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    ZkCode rc = create(path.substr(0, slash), {}, CreateMode::persistent);
    if (rc != ZkCode::ok && rc != ZkCode::node_exists) return rc;
  }
  return ZkCode::ok;
}

ZkCode ZkClient::ensure_path(const std::string& path) {
  ZkCode rc = create_parents(path);
  if (rc != ZkCode::ok) return rc;
  rc = create(path, {}, CreateMode::persistent);
  return rc == ZkCode::node_exists ? ZkCode::ok : rc;
}

}  // namespace ringmaster::discovery
