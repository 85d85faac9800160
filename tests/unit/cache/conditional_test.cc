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

}  // namespace
}  // namespace ringmaster::cache
