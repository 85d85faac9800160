// Conditional requests against a fresh entry: when the answer is 304, and what it carries.
#include <gtest/gtest.h>

#include <string>

#include "ringmaster/cache/cache.h"
#include "test_support.h"

namespace ringmaster::cache {
namespace {

EntryRef entry_with(Fields response_fields) {
  test_support::EntrySpec spec;
  spec.response_fields = std::move(response_fields);
  return test_support::make_entry(spec);
}

TEST(IfNoneMatch, StrongTagMatches) {
  EntryRef e = entry_with({{"ETag", "\"v1\""}});
  EXPECT_TRUE(not_modified(*e, {{"If-None-Match", "\"v1\""}}));
  EXPECT_FALSE(not_modified(*e, {{"If-None-Match", "\"v2\""}}));
}

TEST(IfNoneMatch, WeakComparisonIgnoresTheWeakPrefixOnEitherSide) {
  EntryRef strong = entry_with({{"ETag", "\"v1\""}});
  EntryRef weak = entry_with({{"ETag", "W/\"v1\""}});
  EXPECT_TRUE(not_modified(*strong, {{"If-None-Match", "W/\"v1\""}}));
  EXPECT_TRUE(not_modified(*weak, {{"If-None-Match", "\"v1\""}}));
  EXPECT_TRUE(not_modified(*weak, {{"If-None-Match", "W/\"v1\""}}));
  EXPECT_FALSE(not_modified(*weak, {{"If-None-Match", "W/\"v2\""}}));
}

TEST(IfNoneMatch, AnyMemberOfAListMatches) {
  EntryRef e = entry_with({{"ETag", "\"b,c\""}});
  EXPECT_TRUE(not_modified(*e, {{"If-None-Match", "\"a\", W/\"b,c\" ,\"d\""}}));
  EXPECT_TRUE(not_modified(*e, {{"If-None-Match", "\"a\""}, {"if-none-match", "\"b,c\""}}));
  EXPECT_FALSE(not_modified(*e, {{"If-None-Match", "\"a\", \"b\", \"c\""}}));
}

TEST(IfNoneMatch, StarMatchesAnyStoredRepresentation) {
  EntryRef tagged = entry_with({{"ETag", "\"v1\""}});
  EntryRef untagged = entry_with({});
  EXPECT_TRUE(not_modified(*tagged, {{"If-None-Match", "*"}}));
  EXPECT_TRUE(not_modified(*untagged, {{"If-None-Match", " * "}}));
}

TEST(IfNoneMatch, EntryWithoutETagMatchesNoTag) {
  EntryRef e = entry_with({});
  EXPECT_FALSE(not_modified(*e, {{"If-None-Match", "\"\""}}));
  EXPECT_FALSE(not_modified(*e, {{"If-None-Match", "\"v1\""}}));
}

TEST(IfNoneMatch, MalformedListMatchesNothing) {
  EntryRef e = entry_with({{"ETag", "\"v1\""}});
  EXPECT_FALSE(not_modified(*e, {{"If-None-Match", "v1"}}));
  EXPECT_FALSE(not_modified(*e, {{"If-None-Match", "\"v1"}}));
}

TEST(IfNoneMatch, TakesPrecedenceOverIfModifiedSince) {
  EntryRef e = entry_with({{"ETag", "\"v1\""}, {"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}});
  EXPECT_FALSE(not_modified(*e, {{"If-None-Match", "\"v2\""}, {"If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"}}));
  EXPECT_TRUE(not_modified(*e, {{"If-Modified-Since", "Sat, 05 Nov 1994 08:49:37 GMT"}, {"If-None-Match", "\"v1\""}}));
}

TEST(IfModifiedSince, ModifiedAfterTheDateIsAFullResponse) {
  EntryRef e = entry_with({{"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}});
  EXPECT_FALSE(not_modified(*e, {{"If-Modified-Since", "Sun, 06 Nov 1994 08:49:36 GMT"}}));
}

TEST(IfModifiedSince, ModifiedAtOrBeforeTheDateIsNotModified) {
  EntryRef e = entry_with({{"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}});
  EXPECT_TRUE(not_modified(*e, {{"If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"}}));
  EXPECT_TRUE(not_modified(*e, {{"If-Modified-Since", "Sunday, 06-Nov-94 08:49:38 GMT"}}));
  EXPECT_TRUE(not_modified(*e, {{"If-Modified-Since", "Mon Nov  7 00:00:00 1994"}}));
}

TEST(IfModifiedSince, EntryWithoutLastModifiedIsAFullResponse) {
  EntryRef e = entry_with({{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"}});
  EXPECT_FALSE(not_modified(*e, {{"If-Modified-Since", "Sun, 06 Nov 2044 08:49:37 GMT"}}));
}

TEST(IfModifiedSince, InvalidOrRepeatedFieldIsIgnored) {
  EntryRef e = entry_with({{"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}});
  EXPECT_FALSE(not_modified(*e, {{"If-Modified-Since", "yesterday"}}));
  EXPECT_FALSE(not_modified(*e, {{"If-Modified-Since", "Sun, 06 Nov 2044 08:49:37 GMT"},
                                 {"If-Modified-Since", "Sun, 06 Nov 2044 08:49:37 GMT"}}));
}

TEST(IfModifiedSince, UnconditionalRequestIsAFullResponse) {
  EntryRef e = entry_with({{"ETag", "\"v1\""}, {"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}});
  EXPECT_FALSE(not_modified(*e, {{"Accept", "*/*"}}));
}

TEST(NotModifiedResponse, CarriesOnlyTheValidatorAndCachingFields) {
  EntryRef e = entry_with({{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
                           {"Content-Type", "text/html"},
                           {"ETag", "\"v1\""},
                           {"cache-control", "max-age=60"},
                           {"Expires", "Sun, 06 Nov 1994 08:50:37 GMT"},
                           {"Vary", "Accept-Encoding"},
                           {"Content-Encoding", "gzip"},
                           {"Content-Location", "/index.en.html"},
                           {"Last-Modified", "Sat, 05 Nov 1994 08:49:37 GMT"},
                           {"X-Served-By", "b1"}});
  std::string out = "HTTP/1.1 304 Not Modified\r\n";
  append_304_fields(*e, out);
  EXPECT_EQ(out,
            "HTTP/1.1 304 Not Modified\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "ETag: \"v1\"\r\n"
            "cache-control: max-age=60\r\n"
            "Expires: Sun, 06 Nov 1994 08:50:37 GMT\r\n"
            "Vary: Accept-Encoding\r\n"
            "Content-Location: /index.en.html\r\n"
            "Last-Modified: Sat, 05 Nov 1994 08:49:37 GMT\r\n");
}

// ---- Range (RFC 9110 14) against a stored 200 of 10 bytes ----

struct RangeCase {
  Fields request;
  RangeAnswer answer;
  uint64_t first = 0;
  uint64_t last = 0;
};

TEST(Range, SingleByteRangesOfAStoredResponse) {
  test_support::EntrySpec spec;
  spec.body = "0123456789";
  spec.response_fields = {{"ETag", "\"s\""}, {"Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"}};
  EntryRef e = test_support::make_entry(spec);
  const RangeCase cases[] = {
      {{{"Range", "bytes=0-1"}}, RangeAnswer::partial, 0, 1},
      {{{"Range", "bytes=1-"}}, RangeAnswer::partial, 1, 9},
      {{{"Range", "bytes=-1"}}, RangeAnswer::partial, 9, 9},
      {{{"Range", "bytes=-50"}}, RangeAnswer::partial, 0, 9},
      {{{"Range", "bytes=5-500"}}, RangeAnswer::partial, 5, 9},
      {{{"Range", "bytes=10-"}}, RangeAnswer::unsatisfiable},
      {{{"Range", "bytes=-0"}}, RangeAnswer::unsatisfiable},
      {{{"Range", "bytes=3-1"}}, RangeAnswer::whole},      // invalid: ignored
      {{{"Range", "bytes=0-1,3-4"}}, RangeAnswer::whole},  // several: the whole response
      {{{"Range", "items=0-1"}}, RangeAnswer::whole},
      {{{"Range", "bytes=a-b"}}, RangeAnswer::whole},
      {{{"Range", "bytes=0-1"}, {"If-Range", "\"s\""}}, RangeAnswer::partial, 0, 1},
      {{{"Range", "bytes=0-1"}, {"If-Range", "\"other\""}}, RangeAnswer::whole},
      {{{"Range", "bytes=0-1"}, {"If-Range", "W/\"s\""}}, RangeAnswer::whole},  // weak never matches
      {{{"Range", "bytes=0-1"}, {"If-Range", "Mon, 01 Jan 2024 00:00:00 GMT"}}, RangeAnswer::partial, 0, 1},
      {{{"Range", "bytes=0-1"}, {"If-Range", "Tue, 02 Jan 2024 00:00:00 GMT"}}, RangeAnswer::whole},
  };
  for (const RangeCase& c : cases) {
    ByteRange r;
    RangeAnswer a = select_range(*e, c.request, r);
    EXPECT_EQ(a, c.answer) << c.request[0].value;
    if (a == RangeAnswer::partial && c.answer == RangeAnswer::partial) {
      EXPECT_EQ(r.first, c.first) << c.request[0].value;
      EXPECT_EQ(r.last, c.last) << c.request[0].value;
    }
  }
}

TEST(Range, OnlyA200IsSliced) {
  test_support::EntrySpec spec;
  spec.status = 404;
  EntryRef e = test_support::make_entry(spec);
  ByteRange r;
  EXPECT_EQ(select_range(*e, {{"Range", "bytes=0-1"}}, r), RangeAnswer::whole);
}

}  // namespace
}  // namespace ringmaster::cache
