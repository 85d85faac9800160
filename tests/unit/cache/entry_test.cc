// Stored entries: the head replayed on a hit, Vary bookkeeping, the body limit, charge,
// age and references.
#include <gtest/gtest.h>

#include <string>

#include "ringmaster/cache/cache.h"
#include "test_support.h"

namespace ringmaster::cache {
namespace {

using test_support::make_entry;

StoreDecision storable(int64_t freshness_ms = 60'000) {
  StoreDecision d;
  d.store = true;
  d.freshness_ms = freshness_ms;
  return d;
}

TEST(EntryBuilder, HeadIsStatusLineAndEndToEndFieldsInOrder) {
  Fields req;
  Fields resp{{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
              {"Content-Type", "text/plain"},
              {"Content-Length", "5"},
              {"Transfer-Encoding", "chunked"},
              {"Connection", "keep-alive, X-Hop"},
              {"Keep-Alive", "timeout=5"},
              {"Proxy-Connection", "keep-alive"},
              {"TE", "trailers"},
              {"Trailer", "X-Sum"},
              {"Upgrade", "h2c"},
              {"Age", "3"},
              {"X-Hop", "dropped"},
              {"Set-Cookie", "never=stored"},
              {"x-custom", "kept"}};
  EntryBuilder b("example.com\n/", 1, test_support::get_request(req), 200, resp, storable(), 1024);
  EntryRef e = b.finish(0);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->head,
            "HTTP/1.1 200 OK\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Content-Type: text/plain\r\n"
            "x-custom: kept\r\n");
  EXPECT_EQ(e->status, 200);
}

TEST(EntryBuilder, StatusLineUsesTheUpstreamReasonOrTheStandardOne) {
  Fields none;
  RequestInfo r = test_support::get_request(none);
  EntryBuilder given("k", 1, r, 404, none, storable(), 1024, "Nothing Here");
  EXPECT_EQ(given.finish(0)->head, "HTTP/1.1 404 Nothing Here\r\n");
  EntryBuilder standard("k", 1, r, 301, none, storable(), 1024);
  EXPECT_EQ(standard.finish(0)->head, "HTTP/1.1 301 Moved Permanently\r\n");
  EntryBuilder unsafe("k", 1, r, 200, none, storable(), 1024, "OK\r\nX-Injected: 1");
  EXPECT_EQ(unsafe.finish(0)->head, "HTTP/1.1 200 OK\r\n");
}

TEST(EntryBuilder, CapturesValidatorsAndLifetime) {
  Fields req;
  Fields resp{{"ETag", "W/\"abc\""}, {"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}};
  StoreDecision d = storable(30'000);
  d.initial_age_ms = 4'000;
  EntryBuilder b("k", 7, test_support::get_request(req), 200, resp, d, 1024);
  EntryRef e = b.finish(500);
  EXPECT_EQ(e->etag, "W/\"abc\"");
  EXPECT_EQ(e->last_modified, "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(e->freshness_ms, 30'000);
  EXPECT_EQ(e->initial_age_ms, 4'000);
  EXPECT_EQ(e->stored_at_ms, 500);
  EXPECT_EQ(e->key, "k");
  EXPECT_EQ(e->key_hash, 7u);
}

TEST(EntryBuilder, RecordsLowercaseVaryNamesOnceWithTheRequestsJoinedValues) {
  Fields req{{"Accept-Encoding", "gzip"}, {"accept-encoding", " br "}, {"Accept-Language", "en"}};
  Fields resp{{"Vary", "Accept-Encoding, accept-language"}, {"vary", "ACCEPT-ENCODING,User-Agent"}};
  EntryBuilder b("k", 1, test_support::get_request(req), 200, resp, storable(), 1024);
  EntryRef e = b.finish(0);
  ASSERT_EQ(e->vary_names.size(), 3u);
  EXPECT_EQ(e->vary_names[0], "accept-encoding");
  EXPECT_EQ(e->vary_names[1], "accept-language");
  EXPECT_EQ(e->vary_names[2], "user-agent");
  EXPECT_EQ(e->vary_values[0], "gzip, br");
  EXPECT_EQ(e->vary_values[1], "en");
  EXPECT_EQ(e->vary_values[2], "");
}

TEST(EntryBuilder, BodyPastTheObjectLimitAbandonsTheEntry) {
  Fields none;
  EntryBuilder b("k", 1, test_support::get_request(none), 200, none, storable(), 10);
  EXPECT_TRUE(b.append_body("12345", 5));
  EXPECT_TRUE(b.append_body("67890", 5));
  EXPECT_FALSE(b.abandoned());
  EXPECT_FALSE(b.append_body("!", 1));
  EXPECT_TRUE(b.abandoned());
  EXPECT_FALSE(b.append_body("x", 1));
  EXPECT_FALSE(b.finish(0));
}

TEST(EntryBuilder, BodyExactlyAtTheLimitIsKept) {
  Fields none;
  EntryBuilder b("k", 1, test_support::get_request(none), 200, none, storable(), 4);
  EXPECT_TRUE(b.append_body("abcd", 4));
  EntryRef e = b.finish(0);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->body, "abcd");
}

TEST(EntryBuilder, RefusedDecisionBuildsNothing) {
  Fields none;
  StoreDecision no;
  EntryBuilder b("k", 1, test_support::get_request(none), 200, none, no, 1024);
  EXPECT_TRUE(b.abandoned());
  EXPECT_FALSE(b.finish(0));
}

TEST(Entry, ChargeCountsKeyHeadBodyVaryAndOverhead) {
  test_support::EntrySpec spec;
  spec.body = std::string(1000, 'b');
  spec.request_fields = {{"Accept-Encoding", "gzip"}};
  spec.response_fields = {{"Vary", "Accept-Encoding"}};
  EntryRef e = test_support::make_entry(spec);
  size_t expected = Entry::overhead_bytes + e->key.size() + e->head.size() + 1000 + 15 + 4;
  EXPECT_EQ(e->charge(), expected);
}

TEST(Entry, AgeAndFreshnessCountTheInitialAge) {
  test_support::EntrySpec spec;
  spec.freshness_ms = 10'000;
  spec.initial_age_ms = 3'000;
  spec.now_ms = 100'000;
  EntryRef e = test_support::make_entry(spec);
  EXPECT_EQ(age_seconds(*e, 100'000), 3);
  EXPECT_EQ(age_seconds(*e, 101'999), 4);
  EXPECT_TRUE(is_fresh(*e, 106'999));
  EXPECT_FALSE(is_fresh(*e, 107'000));
  EXPECT_EQ(age_seconds(*e, 50'000), 0);  // a clock read before the store never gives a negative Age
}

TEST(EntryRef, ShareCountsAndTheLastReferenceFrees) {
  EntryRef a = test_support::make_entry("/x");
  EXPECT_EQ(a->refs.load(), 1u);
  EntryRef b = a.share();
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a->refs.load(), 2u);
  EntryRef c = std::move(b);
  EXPECT_FALSE(b);
  EXPECT_EQ(a->refs.load(), 2u);
  c.reset();
  EXPECT_EQ(a->refs.load(), 1u);
  EntryRef d;
  EXPECT_FALSE(d.share());
  d = std::move(a);
  EXPECT_EQ(d->body, "hello");
}

TEST(ServeStale, ForbiddenByRevalidationDirectivesAndBoundedByWindowOrStaleIfError) {
  auto entry = [](const char* cache_control) {
    test_support::EntrySpec spec;
    spec.freshness_ms = 1'000;
    spec.now_ms = 0;
    spec.response_fields = {{"Cache-Control", cache_control}};
    EntryRef e = make_entry(spec);
    e->stale_window_ms = 60'000;
    return e;
  };
  EntryRef plain = entry("max-age=1");
  EXPECT_EQ(staleness_ms(*plain, 3'000), 2'000);
  EXPECT_TRUE(may_serve_stale(*plain, 3'000, true));    // no target answered: the window
  EXPECT_FALSE(may_serve_stale(*plain, 3'000, false));  // a 5xx: only with stale-if-error
  EXPECT_FALSE(may_serve_stale(*plain, 62'000, true));
  for (const char* forbidding : {"max-age=1, must-revalidate", "max-age=1, proxy-revalidate", "s-maxage=1",
                                 "no-cache, max-age=1"}) {
    EXPECT_FALSE(may_serve_stale(*entry(forbidding), 3'000, true)) << forbidding;
  }
  EntryRef swr = entry("max-age=1, stale-while-revalidate=5");
  EXPECT_TRUE(may_serve_while_revalidating(*swr, 3'000));
  EXPECT_FALSE(may_serve_while_revalidating(*swr, 7'000));
  EXPECT_FALSE(may_serve_while_revalidating(*plain, 3'000));
  EXPECT_FALSE(may_serve_while_revalidating(*entry("max-age=1, stale-while-revalidate=5, must-revalidate"), 3'000));
  EntryRef sie = entry("max-age=1, stale-if-error=5");
  EXPECT_TRUE(may_serve_stale(*sie, 3'000, false));
  EXPECT_FALSE(may_serve_stale(*sie, 7'000, false));
  EXPECT_TRUE(may_serve_stale(*sie, 7'000, true));
}

}  // namespace
}  // namespace ringmaster::cache
