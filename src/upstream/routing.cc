#include "ringmaster/upstream/routing.h"

#include <algorithm>
#include <tuple>

namespace ringmaster::upstream {

// ---- Matcher ----

Matcher::Matcher(const std::vector<Rule>& rules, int default_service) : default_(default_service) {
  for (const Rule& rule : rules) {
    if (rule.hosts.empty()) {
      any_host_.longest_first.emplace_back(rule.path_prefix, rule.service);
      continue;
    }
    for (const std::string& host : rule.hosts) {
      bool wildcard = host.size() > 2 && host.starts_with("*.");
      Prefixes& p = wildcard ? wildcards_[host.substr(1)] : exact_[host];
      p.longest_first.emplace_back(rule.path_prefix, rule.service);
    }
  }
  auto order = [](Prefixes& p) {
    std::stable_sort(p.longest_first.begin(), p.longest_first.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  };
  for (auto& [host, p] : exact_) order(p);
  for (auto& [suffix, p] : wildcards_) order(p);
  order(any_host_);
}

int Matcher::Prefixes::find(std::string_view target) const {
  for (const auto& [prefix, service] : longest_first) {
    if (target.starts_with(prefix)) return service;
  }
  return -1;
}

std::string_view Matcher::normalise_host(std::string_view host, char (&buffer)[kHostBytesMax + 1]) {
  if (host.starts_with('[')) {
    // An IPv6 literal: "[::1]:8080" -> "[::1]".
    size_t close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host.ends_with('.')) host.remove_suffix(1);  // "example.com." names the same host
  if (host.size() > kHostBytesMax) return {};
  for (size_t i = 0; i < host.size(); ++i) {
    char c = host[i];
    buffer[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return {buffer, host.size()};
}

int Matcher::match(std::string_view raw_host, std::string_view target) const {
  char buffer[kHostBytesMax + 1];
  std::string_view host = normalise_host(raw_host, buffer);
  if (!host.empty()) {
    if (!exact_.empty()) {
      auto it = exact_.find(host);
      if (it != exact_.end()) {
        if (int s = it->second.find(target); s >= 0) return s;
      }
    }
    if (!wildcards_.empty()) {
      // Most specific first: "a.b.example.com" tries ".b.example.com", then ".example.com".
      for (size_t dot = host.find('.'); dot != std::string_view::npos; dot = host.find('.', dot + 1)) {
        auto it = wildcards_.find(host.substr(dot));
        if (it != wildcards_.end()) {
          if (int s = it->second.find(target); s >= 0) return s;
        }
      }
    }
  }
  if (int s = any_host_.find(target); s >= 0) return s;
  return default_;
}

// ---- RouteBoard ----

void RouteBoard::set_services(std::vector<ServiceSpec> services, int default_service) {
  std::vector<Matcher::Rule> rules;
  for (size_t i = 0; i < services.size(); ++i) {
    if (!services[i].matchable) continue;
    rules.push_back(Matcher::Rule{services[i].hosts, services[i].path_prefix, static_cast<int>(i)});
  }
  auto matcher = std::make_shared<const Matcher>(rules, default_service);
  std::lock_guard lock(mutex_);
  services_ = std::move(services);
  matcher_ = std::move(matcher);
  std::erase_if(gone_, [this](const std::string& source) {
    if (reads_locked(source)) return false;
    targets_.erase(source);
    return true;
  });
  publish_locked();
}

bool RouteBoard::reads_locked(const std::string& source) const {
  return std::any_of(services_.begin(), services_.end(),
                     [&source](const ServiceSpec& s) { return s.runtime->source == source; });
}

void RouteBoard::set_targets(const std::string& source, std::shared_ptr<const TargetSnapshot> targets) {
  std::lock_guard lock(mutex_);
  if (targets) {
    targets_[source] = std::move(targets);
    gone_.erase(source);
  } else if (reads_locked(source)) {
    gone_.insert(source);
    return;  // the table in use is unchanged
  } else {
    targets_.erase(source);
  }
  if (matcher_) publish_locked();
}

bool RouteBoard::routes_to(const std::string& source) const {
  std::lock_guard lock(mutex_);
  return std::any_of(routed_.begin(), routed_.end(), [&source](const auto& r) { return r.second.source == source; });
}

std::shared_ptr<const TargetSnapshot> RouteBoard::targets(const std::string& source) const {
  std::lock_guard lock(mutex_);
  auto it = targets_.find(source);
  return it == targets_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<ServiceRuntime>> RouteBoard::services() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<ServiceRuntime>> out;
  for (const ServiceSpec& s : services_) out.push_back(s.runtime);
  return out;
}

void RouteBoard::reclaim() {
  std::lock_guard lock(mutex_);
  cell_.reclaim();
}

void RouteBoard::publish_locked() {
  auto table = std::make_unique<RoutingTable>();
  table->version = ++version_;
  table->matcher = matcher_;
  table->services.reserve(services_.size());
  std::map<std::string, Routed> routed;
  for (const ServiceSpec& s : services_) {
    Routed r{s.runtime->source, empty_};
    if (auto it = targets_.find(s.runtime->source); it != targets_.end()) {
      r.targets = it->second;
    } else if (auto was = routed_.find(s.runtime->name); was != routed_.end()) {
      r = was->second;  // its source not read yet: the targets it had, whoever's they are
    }
    table->services.push_back(RoutedService{s.runtime, r.targets, s.limits});
    routed[s.runtime->name] = std::move(r);
  }
  routed_ = std::move(routed);
  cell_.publish(std::move(table));
}

void register_service_metrics(metrics::Registry& registry, const RouteBoard& board) {
  constexpr std::tuple<const char*, const char*, metrics::Counter ServiceSlot::*> kCounters[] = {
      {"ringmaster_service_requests_total", "Requests routed to each service.", &ServiceSlot::requests},
      {"ringmaster_service_cache_hits_total", "Requests answered from each service's cache.", &ServiceSlot::cache_hits},
      {"ringmaster_service_cache_misses_total", "Cache misses by service (sent upstream).", &ServiceSlot::cache_misses},
  };
  for (auto [name, help, member] : kCounters) {
    registry.family(name, metrics::Type::counter, help, [&board, member](metrics::Samples& out) {
      for (const auto& s : board.services()) {
        uint64_t n = 0;
        for (unsigned r = 0; r < s->reactors; ++r) n += (s->slots[r].*member).get();
        out.add("service=\"" + metrics::label_value(s->name) + "\"", n);
      }
    });
  }
  constexpr std::tuple<const char*, const char*, metrics::Histogram ServiceSlot::*> kHistograms[] = {
      {"ringmaster_service_request_duration_seconds", "Per service: first request byte to answer complete.",
       &ServiceSlot::request_time},
      {"ringmaster_service_upstream_duration_seconds", "Per service: time upstream of requests that went there.",
       &ServiceSlot::upstream_time},
  };
  for (auto [name, help, member] : kHistograms) {
    registry.family(name, metrics::Type::histogram, help, [&board, member](metrics::Samples& out) {
      std::vector<const metrics::Histogram*> parts;
      for (const auto& s : board.services()) {
        parts.clear();
        for (unsigned r = 0; r < s->reactors; ++r) parts.push_back(&(s->slots[r].*member));
        out.add_histogram("service=\"" + metrics::label_value(s->name) + "\"", parts);
      }
    });
  }
}

}  // namespace ringmaster::upstream
