// Which requests use the cache and which responses it stores, for how long (RFC 9111).
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "cache/semantics.h"
#include "ringmaster/cache/cache.h"
#include "test_support.h"

namespace ringmaster::cache {
namespace {

using test_support::get_request;

constexpr int64_t kTtlMs = 120'000;
constexpr int64_t kNowMs = 784'111'777'000;  // Sun, 06 Nov 1994 08:49:37 GMT

StoreDecision classify(const Fields& fields, uint16_t status = 200, bool authorization = false) {
  return classify_response(status, fields, authorization, kTtlMs, kNowMs);
}

// ---- Requests ----

TEST(RequestPolicy, GetMayBeLookedUpAndStored) {
  Fields f;
  RequestPolicy p = classify_request(get_request(f));
  EXPECT_TRUE(p.lookup);
  EXPECT_TRUE(p.store);
  EXPECT_FALSE(p.has_authorization);
}

TEST(RequestPolicy, HeadIsLookedUpButNotStored) {
  Fields f;
  RequestInfo r = get_request(f);
  r.is_get = false;
  r.is_head = true;
  RequestPolicy p = classify_request(r);
  EXPECT_TRUE(p.lookup);
  EXPECT_FALSE(p.store);
}

TEST(RequestPolicy, OtherMethodsNeitherLookUpNorStore) {
  Fields f;
  RequestInfo r = get_request(f);
  r.is_get = false;
  RequestPolicy p = classify_request(r);
  EXPECT_FALSE(p.lookup);
  EXPECT_FALSE(p.store);
}

TEST(RequestPolicy, AuthorizationSkipsLookupButLeavesStoreToTheResponse) {
  Fields f{{"authorization", "Bearer x"}};
  RequestPolicy p = classify_request(get_request(f));
  EXPECT_FALSE(p.lookup);
  EXPECT_TRUE(p.store);
  EXPECT_TRUE(p.has_authorization);
}

TEST(RequestPolicy, NoCacheSkipsLookupButStoresTheFreshResponse) {
  Fields f{{"Cache-Control", "max-stale=10, No-Cache"}};
  RequestPolicy p = classify_request(get_request(f));
  EXPECT_FALSE(p.lookup);
  EXPECT_TRUE(p.store);
}

TEST(RequestPolicy, NoStoreSkipsLookupAndStore) {
  Fields f{{"Cache-Control", "no-store"}};
  RequestPolicy p = classify_request(get_request(f));
  EXPECT_FALSE(p.lookup);
  EXPECT_FALSE(p.store);
}

TEST(RequestPolicy, PragmaNoCacheSkipsLookup) {
  Fields f{{"Pragma", "no-cache"}};
  RequestPolicy p = classify_request(get_request(f));
  EXPECT_FALSE(p.lookup);
  EXPECT_TRUE(p.store);
}

TEST(RequestPolicy, RangeIsLookedUpButNotStored) {
  Fields f{{"Range", "bytes=0-99"}};
  RequestPolicy p = classify_request(get_request(f));
  EXPECT_TRUE(p.lookup);
  EXPECT_FALSE(p.store);
  EXPECT_TRUE(p.has_range);
}

// Like nginx, a browser reload's "max-age=0" is not a bypass; only no-cache / no-store are.
TEST(RequestPolicy, RequestMaxAgeAndOtherDirectivesKeepLookup) {
  Fields f{{"Cache-Control", "max-age=0, no-transform"}, {"Accept", "*/*"}};
  EXPECT_TRUE(classify_request(get_request(f)).lookup);
}

// ---- Keys ----

TEST(PrimaryKey, IsLowercaseHostNewlineExactTarget) {
  Fields f;
  std::string key;
  primary_key(get_request(f, "/A/b?Q=1", "Example.COM"), key);
  EXPECT_EQ(key, "example.com\n/A/b?Q=1");
}

TEST(PrimaryKey, GetAndHeadShareTheKey) {
  Fields f;
  RequestInfo get = get_request(f, "/x");
  RequestInfo head = get;
  head.is_get = false;
  head.is_head = true;
  std::string a, b;
  primary_key(get, a);
  primary_key(head, b);
  EXPECT_EQ(a, b);
}

TEST(HashKey, IsDeterministicAndSpreadsSimilarKeys) {
  EXPECT_EQ(hash_key("example.com\n/a"), hash_key("example.com\n/a"));
  std::set<uint64_t> full, low_bits, high_bits;
  for (int i = 0; i < 100'000; ++i) {
    std::string key = "example.com\n/item/" + std::to_string(i);
    uint64_t h = hash_key(key);
    full.insert(h);
    low_bits.insert(h & 0xffff);
    high_bits.insert((h >> 32) & 0xffff);
  }
  EXPECT_EQ(full.size(), 100'000u);
  // 100k draws into 65536 slots fill about 1 - e^-1.53 = 78% of them if the bits are random.
  EXPECT_GT(low_bits.size(), 48'000u);
  EXPECT_GT(high_bits.size(), 48'000u);
}

TEST(HashKey, EveryLengthHashesDifferently) {
  std::string key;
  std::set<uint64_t> seen;
  for (int n = 0; n < 80; ++n) {
    seen.insert(hash_key(key));
    key.push_back('a');
  }
  EXPECT_EQ(seen.size(), 80u);
}

// ---- Responses ----

TEST(ResponsePolicy, OptInTtlGivesALifetimeToResponsesThatStateNone) {
  StoreDecision d = classify({{"Content-Type", "text/html"}});
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.freshness_ms, kTtlMs);
  EXPECT_EQ(d.initial_age_ms, 0);
}

TEST(ResponsePolicy, WithoutTtlOrLastModifiedNothingIsStored) {
  StoreDecision d = classify_response(200, {{"Content-Type", "text/html"}}, false, 0, kNowMs);
  EXPECT_FALSE(d.store);
  EXPECT_STREQ(d.reason, "no-freshness");
}

// RFC 9111 4.2.2: 10% of Date - Last-Modified.
TEST(ResponsePolicy, HeuristicFreshnessIsATenthOfTheTimeSinceLastModified) {
  // Date is kNowMs; Last-Modified 10000 s before it.
  Fields f = {{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"}, {"Last-Modified", "Sun, 06 Nov 1994 06:02:57 GMT"}};
  StoreDecision d = classify_response(200, f, false, 0, kNowMs);
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.freshness_ms, 1'000'000);
  // Without Date, now stands in for it.
  d = classify_response(200, {{"Last-Modified", "Sun, 06 Nov 1994 06:02:57 GMT"}}, false, 0, kNowMs);
  EXPECT_EQ(d.freshness_ms, 1'000'000);
}

TEST(ResponsePolicy, HeuristicFreshnessIsCappedAtADay) {
  StoreDecision d = classify_response(200, {{"Last-Modified", "Mon, 01 Jan 1990 00:00:00 GMT"}}, false, 0, kNowMs);
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.freshness_ms, 86'400'000);
}

TEST(ResponsePolicy, NoHeuristicFromAFutureOrInvalidLastModified) {
  // A future Last-Modified is still a validator: stored, but stale from the start.
  StoreDecision d = classify_response(200, {{"Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"}}, false, 0, kNowMs);
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.freshness_ms, 0);
  EXPECT_FALSE(classify_response(200, {{"Last-Modified", "yesterday"}}, false, 0, kNowMs).store);
}

// RFC 9111 4.3: what may not be used without asking the origin is stored when it can be
// asked about (a validator), with no freshness: every use revalidates first.
TEST(ResponsePolicy, ResponsesNeedingRevalidationAreStoredStaleWhenTheyHaveAValidator) {
  const Fields cases[] = {
      {{"Cache-Control", "no-cache"}, {"ETag", "\"a\""}},
      {{"Cache-Control", "no-cache=\"x-foo\", max-age=60"}, {"ETag", "\"a\""}},
      {{"Cache-Control", "max-age=0"}, {"ETag", "\"a\""}},
      {{"Cache-Control", "max-age=60"}, {"Age", "120"}, {"Last-Modified", "Mon, 01 Jan 1990 00:00:00 GMT"}},
      {{"Expires", "Sun, 06 Nov 1994 08:00:00 GMT"}, {"ETag", "W/\"b\""}},
      {{"ETag", "\"only-a-validator\""}},
  };
  for (const Fields& f : cases) {
    StoreDecision d = classify_response(200, f, false, 0, kNowMs);
    EXPECT_TRUE(d.store) << f[0].name << ": " << f[0].value;
    EXPECT_EQ(d.freshness_ms, 0) << f[0].value;
  }
  // The same without a validator: not stored.
  for (const Fields& f : cases) {
    Fields without;
    for (const HeaderField& h : f) {
      if (h.name != "ETag" && h.name != "Last-Modified") without.push_back(h);
    }
    if (without.empty()) continue;
    EXPECT_FALSE(classify_response(200, without, false, 0, kNowMs).store) << f[0].value;
  }
}

TEST(ResponsePolicy, HeuristicsOnlyForHeuristicallyCacheableStatusesOrPublic) {
  Fields lm = {{"Last-Modified", "Mon, 01 Jan 1990 00:00:00 GMT"}};
  for (uint16_t s : {200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501}) {
    EXPECT_TRUE(classify_response(s, lm, false, 0, kNowMs).store) << s;
    EXPECT_TRUE(classify({}, s).store) << s;  // and the opt-in TTL
  }
  for (uint16_t s : {201, 302, 303, 307, 400, 403, 500, 502, 503, 599}) {
    StoreDecision d = classify_response(s, lm, false, 0, kNowMs);
    EXPECT_FALSE(d.store) << s;
    EXPECT_STREQ(d.reason, "status");
    EXPECT_FALSE(classify({}, s).store) << s;
    Fields lm_public = {{"Last-Modified", "Mon, 01 Jan 1990 00:00:00 GMT"}, {"Cache-Control", "public"}};
    EXPECT_TRUE(classify_response(s, lm_public, false, 0, kNowMs).store) << s;
  }
}

TEST(ResponsePolicy, AnyFinalStatusWithExplicitFreshnessIsStored) {
  for (uint16_t s : {200, 201, 302, 303, 307, 400, 403, 500, 502, 503, 299, 599}) {
    EXPECT_TRUE(classify({{"Cache-Control", "max-age=60"}}, s).store) << s;
  }
  // Not whole responses: interim, partial and not-modified answers.
  for (uint16_t s : {100, 103, 206, 304}) {
    StoreDecision d = classify({{"Cache-Control", "max-age=60"}}, s);
    EXPECT_FALSE(d.store) << s;
    EXPECT_STREQ(d.reason, "status");
  }
}

TEST(ResponsePolicy, MustUnderstandStoresOnlyKnownStatusesAndOverridesNoStore) {
  StoreDecision d = classify({{"Cache-Control", "must-understand, no-store, max-age=60"}}, 200);
  EXPECT_TRUE(d.store);
  d = classify({{"Cache-Control", "must-understand, no-store, max-age=60"}}, 599);
  EXPECT_FALSE(d.store);
  EXPECT_STREQ(d.reason, "must-understand");
}

TEST(ResponsePolicy, NoStoreIsNotStored) {
  StoreDecision d = classify({{"Cache-Control", "max-age=60, no-store"}});
  EXPECT_FALSE(d.store);
  EXPECT_STREQ(d.reason, "no-store");
}

TEST(ResponsePolicy, PrivateIsNotStoredWithOrWithoutFieldList) {
  EXPECT_STREQ(classify({{"Cache-Control", "private"}}).reason, "private");
  StoreDecision d = classify({{"Cache-Control", "private=\"Set-Cookie, X-User\", max-age=60"}});
  EXPECT_FALSE(d.store);
  EXPECT_STREQ(d.reason, "private");
}

TEST(ResponsePolicy, NoCacheIsNotStoredWithOrWithoutFieldList) {
  EXPECT_STREQ(classify({{"Cache-Control", "no-cache"}}).reason, "no-cache");
  StoreDecision d = classify({{"Cache-Control", "max-age=60, no-cache=\"X-Debug\""}});
  EXPECT_FALSE(d.store);
  EXPECT_STREQ(d.reason, "no-cache");
}

TEST(ResponsePolicy, MaxAgeSetsTheLifetime) {
  StoreDecision d = classify({{"Cache-Control", "public, max-age=30"}});
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.freshness_ms, 30'000);
}

TEST(ResponsePolicy, DirectivesAreCaseInsensitiveAndSpanSeveralFields) {
  StoreDecision d = classify({{"cache-control", "PUBLIC"}, {"CACHE-CONTROL", " Max-Age=45 ,must-revalidate"}});
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.freshness_ms, 45'000);
  EXPECT_STREQ(classify({{"Cache-Control", "max-age=5"}, {"Cache-Control", "NO-STORE"}}).reason, "no-store");
}

TEST(ResponsePolicy, CommasInsideQuotedStringsDoNotSplitDirectives) {
  StoreDecision d = classify({{"Cache-Control", "ext=\"no-store, private\", max-age=10"}});
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.freshness_ms, 10'000);
}

TEST(ResponsePolicy, SMaxAgeBeatsMaxAgeInEitherOrder) {
  EXPECT_EQ(classify({{"Cache-Control", "max-age=10, s-maxage=100"}}).freshness_ms, 100'000);
  EXPECT_EQ(classify({{"Cache-Control", "s-maxage=100, max-age=10"}}).freshness_ms, 100'000);
  EXPECT_EQ(classify({{"Cache-Control", "s-maxage=5"}, {"Cache-Control", "max-age=500"}}).freshness_ms, 5'000);
}

TEST(ResponsePolicy, MaxAgeBeatsExpires) {
  StoreDecision d = classify({{"Cache-Control", "max-age=10"}, {"Expires", "Sun, 06 Nov 1994 09:49:37 GMT"}});
  EXPECT_EQ(d.freshness_ms, 10'000);
}

TEST(ResponsePolicy, InvalidMaxAgeIsNotStored) {
  for (const char* cc : {"max-age=abc", "max-age=", "max-age", "max-age=-1", "max-age=1.5", "max-age=10s"}) {
    StoreDecision d = classify({{"Cache-Control", cc}});
    EXPECT_FALSE(d.store) << cc;
    EXPECT_STREQ(d.reason, "invalid-max-age") << cc;
  }
  EXPECT_STREQ(classify({{"Cache-Control", "s-maxage=x, max-age=10"}}).reason, "invalid-s-maxage");
}

TEST(ResponsePolicy, QuotedMaxAgeIsAccepted) {
  // RFC 9111 5.2: recipients ought to accept the quoted-string form of arguments.
  EXPECT_EQ(classify({{"Cache-Control", "max-age=\"20\""}}).freshness_ms, 20'000);
}

TEST(ResponsePolicy, FirstMaxAgeWins) {
  EXPECT_EQ(classify({{"Cache-Control", "max-age=20, max-age=99"}}).freshness_ms, 20'000);
}

TEST(ResponsePolicy, HugeMaxAgeSaturatesAt2To31Seconds) {
  StoreDecision d = classify({{"Cache-Control", "max-age=99999999999999999999999"}});
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.freshness_ms, (int64_t{1} << 31) * 1000);
}

TEST(ResponsePolicy, MaxAgeZeroIsNotStored) {
  StoreDecision d = classify({{"Cache-Control", "max-age=0"}});
  EXPECT_FALSE(d.store);
  EXPECT_STREQ(d.reason, "expired");
}

TEST(ResponsePolicy, ExpiresMinusDateIsTheLifetime) {
  // Date is an hour before our clock: only the difference counts (clock skew is irrelevant).
  StoreDecision d =
      classify({{"Date", "Sun, 06 Nov 1994 07:49:37 GMT"}, {"Expires", "Sun, 06 Nov 1994 07:50:07 GMT"}});
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.freshness_ms, 30'000);
}

TEST(ResponsePolicy, ExpiresWithoutDateCountsFromNow) {
  StoreDecision d = classify({{"Expires", "Sun, 06 Nov 1994 08:50:37 GMT"}});
  EXPECT_EQ(d.freshness_ms, 60'000);
}

TEST(ResponsePolicy, ExpiresInRfc850AndAsctimeForms) {
  EXPECT_EQ(classify({{"Expires", "Sunday, 06-Nov-94 08:50:37 GMT"}}).freshness_ms, 60'000);
  EXPECT_EQ(classify({{"Expires", "Sun Nov  6 08:50:37 1994"}}).freshness_ms, 60'000);
}

TEST(ResponsePolicy, ExpiresInThePastIsNotStored) {
  StoreDecision d = classify({{"Expires", "Sun, 06 Nov 1994 08:00:00 GMT"}});
  EXPECT_FALSE(d.store);
  EXPECT_STREQ(d.reason, "expired");
}

TEST(ResponsePolicy, InvalidExpiresMeansAlreadyExpired) {
  for (const char* v : {"0", "-1", "tomorrow", "Sun, 06 Nov 1994 08:49:37", "Sun, 31 Feb 1994 08:49:37 GMT"}) {
    StoreDecision d = classify({{"Expires", v}});
    EXPECT_FALSE(d.store) << v;
    EXPECT_STREQ(d.reason, "expired") << v;
  }
}

TEST(ResponsePolicy, InvalidExpiresIsIgnoredWhenMaxAgeIsPresent) {
  StoreDecision d = classify({{"Expires", "0"}, {"Cache-Control", "max-age=15"}});
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.freshness_ms, 15'000);
}

TEST(ResponsePolicy, SetCookieIsNotStored) {
  StoreDecision d = classify({{"Cache-Control", "public, max-age=60"}, {"Set-Cookie", "a=b"}});
  EXPECT_FALSE(d.store);
  EXPECT_STREQ(d.reason, "set-cookie");
}

TEST(ResponsePolicy, VaryStarIsNotStored) {
  EXPECT_STREQ(classify({{"Vary", "*"}}).reason, "vary-star");
  EXPECT_STREQ(classify({{"Vary", "Accept"}, {"vary", "Accept-Encoding, *"}}).reason, "vary-star");
  EXPECT_TRUE(classify({{"Vary", "Accept-Encoding"}}).store);
}

TEST(ResponsePolicy, AuthorizedRequestIsNotStoredWithoutPermission) {
  StoreDecision d = classify({{"Cache-Control", "max-age=60"}}, 200, true);
  EXPECT_FALSE(d.store);
  EXPECT_STREQ(d.reason, "authorization");
}

TEST(ResponsePolicy, AuthorizedRequestIsStoredWhenPublicSMaxAgeOrMustRevalidate) {
  EXPECT_TRUE(classify({{"Cache-Control", "public"}}, 200, true).store);
  EXPECT_EQ(classify({{"Cache-Control", "s-maxage=30"}}, 200, true).freshness_ms, 30'000);
  EXPECT_TRUE(classify({{"Cache-Control", "must-revalidate, max-age=30"}}, 200, true).store);
}

TEST(ResponsePolicy, MustRevalidateAndProxyRevalidateAreStored) {
  EXPECT_TRUE(classify({{"Cache-Control", "must-revalidate, max-age=30"}}).store);
  EXPECT_TRUE(classify({{"Cache-Control", "proxy-revalidate, max-age=30"}}).store);
}

TEST(ResponsePolicy, AgeHeaderIsTheInitialAge) {
  StoreDecision d = classify({{"Cache-Control", "max-age=60"}, {"Age", "25"}});
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.initial_age_ms, 25'000);
}

// Conservative: an Age we cannot read might hide an old response.
TEST(ResponsePolicy, InvalidAgeIsNotStored) {
  for (const char* age : {"1.5", "-3", "abc", "7200;foo=bar", ""}) {
    StoreDecision d = classify({{"Cache-Control", "max-age=3600"}, {"Age", age}});
    EXPECT_FALSE(d.store) << age;
    EXPECT_STREQ(d.reason, "invalid-age") << age;
  }
}

// A list, on one line or several, is no single age: invalid, so stale (stored only for
// revalidation when there is a validator).
TEST(ResponsePolicy, AgeListIsInvalid) {
  const Fields lists[] = {{{"Age", "7200, 0"}}, {{"Age", "0,7200"}}, {{"Age", "0"}, {"Age", "7200"}},
                          {{"Age", "0, 0"}},    {{"Age", "0"}, {"Age", "0"}}};
  for (const Fields& ages : lists) {
    Fields f = ages;
    f.push_back({"Cache-Control", "max-age=3600"});
    StoreDecision d = classify(f);
    EXPECT_FALSE(d.store) << ages[0].value;
    EXPECT_STREQ(d.reason, "invalid-age");
    f.push_back({"ETag", "\"e\""});
    d = classify(f);
    EXPECT_TRUE(d.store);
    EXPECT_EQ(d.freshness_ms, 0) << ages[0].value;
  }
  EXPECT_EQ(classify({{"Cache-Control", "max-age=3600"}, {"Age", " 25 "}}).initial_age_ms, 25'000);
}

TEST(ResponsePolicy, ResponseAlreadyAsOldAsItsLifetimeIsNotStored) {
  StoreDecision d = classify({{"Cache-Control", "max-age=60"}, {"Age", "60"}});
  EXPECT_FALSE(d.store);
  EXPECT_STREQ(d.reason, "stale");
}

// ---- Surrogate-Control ----

TEST(ResponsePolicy, SurrogateControlAddressedToUsOverridesCacheControl) {
  // Its max-age wins over Cache-Control's, longer or shorter, and over no-store.
  EXPECT_EQ(classify({{"Cache-Control", "max-age=1"}, {"Surrogate-Control", "max-age=3600"}}).freshness_ms, 3'600'000);
  EXPECT_EQ(classify({{"Cache-Control", "max-age=3600"}, {"Surrogate-Control", "MaX-aGe=1"}}).freshness_ms, 1'000);
  EXPECT_EQ(classify({{"Cache-Control", "no-store"}, {"Surrogate-Control", "max-age=60;ringmaster"}}).freshness_ms,
            60'000);
  EXPECT_EQ(classify({{"Surrogate-Control", "foobar, max-age=60+600"}}).freshness_ms, 60'000);
  // no-store: not stored whatever Cache-Control says.
  StoreDecision d = classify({{"Cache-Control", "max-age=10000"}, {"Surrogate-Control", "no-store"}});
  EXPECT_FALSE(d.store);
  EXPECT_STREQ(d.reason, "surrogate-no-store");
  // max-age=0: no lifetime.
  EXPECT_FALSE(classify_response(200, {{"Surrogate-Control", "max-age=0"}}, false, 0, kNowMs).store);
}

TEST(ResponsePolicy, SurrogateControlTargetedElsewhereIsIgnored) {
  EXPECT_EQ(classify({{"Cache-Control", "max-age=5"}, {"Surrogate-Control", "max-age=3600;not-for-you"}}).freshness_ms,
            5'000);
  EXPECT_TRUE(classify({{"Cache-Control", "max-age=5"}, {"Surrogate-Control", "no-store;other"}}).store);
  EXPECT_FALSE(classify({{"Cache-Control", "no-store"}, {"Surrogate-Control", "max-age=60;other"}}).store);
}

// ---- Invalidation ----

TEST(Invalidation, EveryMethodButTheSafeOnesInvalidates) {
  for (const char* m : {"POST", "PUT", "DELETE", "PATCH", "M-SEARCH"}) EXPECT_TRUE(invalidates_on_success(m)) << m;
  for (const char* m : {"GET", "HEAD", "OPTIONS", "TRACE"}) EXPECT_FALSE(invalidates_on_success(m)) << m;
}

TEST(Invalidation, ReferencesResolveAgainstTheRequestOnTheSameOriginOnly) {
  std::string key;
  struct Case {
    const char* reference;
    const char* key;  // nullptr: another origin or unusable
  };
  const Case cases[] = {
      {"/x/y?z", "example.com\n/x/y?z"},
      {"http://Example.com/x", "example.com\n/x"},
      {"HTTP://example.com", "example.com\n/"},
      {"http://example.com?q", "example.com\n/?q"},
      {"//example.com/n", "example.com\n/n"},
      {"sibling", "example.com\n/dir/sibling"},
      {"?q=2", "example.com\n/dir/page?q=2"},
      {"/frag#part", "example.com\n/frag"},
      {"http://other.com/x", nullptr},
      {"http://example.com:8080/x", nullptr},
      {"https://example.com/x", nullptr},
      {"mailto:a@example.com", nullptr},
      {"../up", nullptr},
      {"", nullptr},
  };
  for (const Case& c : cases) {
    bool ok = reference_key("example.com", "/dir/page?q=1", c.reference, key);
    EXPECT_EQ(ok, c.key != nullptr) << c.reference;
    if (ok && c.key != nullptr) {
      EXPECT_EQ(key, c.key) << c.reference;
    }
  }
}

// ---- HTTP dates ----

TEST(HttpDate, ParsesTheThreeFormsOfRfc9110) {
  int64_t t = 0;
  ASSERT_TRUE(detail::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", t));
  EXPECT_EQ(t, 784111777);
  ASSERT_TRUE(detail::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", t));
  EXPECT_EQ(t, 784111777);
  ASSERT_TRUE(detail::parse_http_date("Sun Nov  6 08:49:37 1994", t));
  EXPECT_EQ(t, 784111777);
  ASSERT_TRUE(detail::parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT", t));
  EXPECT_EQ(t, 0);
  ASSERT_TRUE(detail::parse_http_date("Thu, 29 Feb 2024 23:59:59 GMT", t));
  EXPECT_EQ(t, 1709251199);
  ASSERT_TRUE(detail::parse_http_date("Monday, 01-Jan-24 00:00:00 GMT", t));
  EXPECT_EQ(t, 1704067200);
}

TEST(HttpDate, RejectsMalformedDates) {
  int64_t t = 0;
  for (const char* s : {"", "0", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC",
                        "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
                        "Sun, 29 Feb 1900 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
                        "Sun, 06 Nov 1994 08:49:37 GMT trailing", "Xyz, 06 Nov 1994 08:49:37 GMT",
                        "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun Nov 6 08:49:37 1994"}) {
    EXPECT_FALSE(detail::parse_http_date(s, t)) << s;
  }
}

}  // namespace
}  // namespace ringmaster::cache
