// Conditional requests against a fresh entry: when the answer is 304, and what it carries.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

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
      {{{"Range", "items=0-1"}}, RangeAnswer::whole},
      {{{"Range", "bytes=a-b"}}, RangeAnswer::whole},
      {{{"Range", "bytes=0-1"}, {"If-Range", "\"s\""}}, RangeAnswer::partial, 0, 1},
      {{{"Range", "bytes=0-1"}, {"If-Range", "\"other\""}}, RangeAnswer::whole},
      {{{"Range", "bytes=0-1"}, {"If-Range", "W/\"s\""}}, RangeAnswer::whole},  // weak never matches
      {{{"Range", "bytes=0-1"}, {"If-Range", "Mon, 01 Jan 2024 00:00:00 GMT"}}, RangeAnswer::partial, 0, 1},
      {{{"Range", "bytes=0-1"}, {"If-Range", "Tue, 02 Jan 2024 00:00:00 GMT"}}, RangeAnswer::whole},
  };
  for (const RangeCase& c : cases) {
    ByteRanges r;
    RangeAnswer a = select_range(*e, c.request, r);
    EXPECT_EQ(a, c.answer) << c.request[0].value;
    if (a == RangeAnswer::partial && c.answer == RangeAnswer::partial) {
      ASSERT_EQ(r.count, 1u);
      EXPECT_EQ(r.range[0].first, c.first) << c.request[0].value;
      EXPECT_EQ(r.range[0].last, c.last) << c.request[0].value;
    }
  }
}

TEST(Range, OnlyA200IsSliced) {
  test_support::EntrySpec spec;
  spec.status = 404;
  EntryRef e = test_support::make_entry(spec);
  ByteRanges r;
  EXPECT_EQ(select_range(*e, {{"Range", "bytes=0-1"}}, r), RangeAnswer::whole);
}

// Several ranges, as nginx answers them: the satisfiable ones in the order asked, as parts
// of a multipart/byteranges body; the whole response when that would be abusive.
TEST(Range, SeveralRangesAreAnsweredAsParts) {
  test_support::EntrySpec spec;
  spec.body = "0123456789";
  EntryRef e = test_support::make_entry(spec);
  struct Case {
    const char* range;
    RangeAnswer answer;
    std::vector<std::pair<uint64_t, uint64_t>> parts;
  };
  const Case cases[] = {
      {"bytes=0-1,5-6", RangeAnswer::multipart, {{0, 1}, {5, 6}}},
      {"bytes=8-, 0-0", RangeAnswer::multipart, {{8, 9}, {0, 0}}},  // the order asked
      {"bytes=-2,,1-1", RangeAnswer::multipart, {{8, 9}, {1, 1}}},  // empty list elements
      {"bytes=0-1,20-30", RangeAnswer::partial, {{0, 1}}},          // the unsatisfiable one left out
      {"bytes=20-,30-", RangeAnswer::unsatisfiable, {}},
      {"bytes=0-1,3-x", RangeAnswer::whole, {}},                   // one invalid: Range ignored
      {"bytes=0-7,2-9", RangeAnswer::whole, {}},                   // overlaps past the body's size
      {"bytes=,", RangeAnswer::whole, {}},
  };
  for (const Case& c : cases) {
    ByteRanges r;
    EXPECT_EQ(select_range(*e, {{"Range", c.range}}, r), c.answer) << c.range;
    if (c.answer == RangeAnswer::whole || c.answer == RangeAnswer::unsatisfiable) continue;
    ASSERT_EQ(r.count, c.parts.size()) << c.range;
    for (size_t i = 0; i < r.count; ++i) {
      EXPECT_EQ(r.range[i].first, c.parts[i].first) << c.range;
      EXPECT_EQ(r.range[i].last, c.parts[i].second) << c.range;
    }
  }
}

TEST(BackgroundRefresh, CarriesEveryClientFieldButPreconditionsAndRange) {
  for (const char* name : {"If-None-Match", "if-modified-since", "IF-MATCH", "If-Range", "if-unmodified-since",
                           "Range", "RANGE"}) {
    EXPECT_FALSE(carried_by_refresh(name)) << name;
  }
  for (const char* name : {"Accept", "Accept-Encoding", "Authorization", "Ranges", "Rang", "If", "Iff", "X-If-None"}) {
    EXPECT_TRUE(carried_by_refresh(name)) << name;
  }
}

TEST(Range, AtMostKByteRangesMaxParts) {
  test_support::EntrySpec spec;
  spec.body = std::string(1000, 'x');
  EntryRef e = test_support::make_entry(spec);
  auto ranges = [](size_t n) {
    std::string s = "bytes=";
    for (size_t i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(i * 2) + "-" + std::to_string(i * 2);
    return s;
  };
  ByteRanges r;
  std::string at_limit = ranges(kByteRangesMax);
  EXPECT_EQ(select_range(*e, {{"Range", at_limit}}, r), RangeAnswer::multipart);
  EXPECT_EQ(r.count, kByteRangesMax);
  std::string past_limit = ranges(kByteRangesMax + 1);
  EXPECT_EQ(select_range(*e, {{"Range", past_limit}}, r), RangeAnswer::whole);
}

TEST(Range, MultipartBodyIsLaidOutAsNginxDoes) {
  test_support::EntrySpec spec;
  spec.body = "0123456789";
  spec.response_fields = {{"Content-Type", "text/plain"}, {"ETag", "\"m\""}};
  EntryRef e = test_support::make_entry(spec);
  ByteRanges r;
  ASSERT_EQ(select_range(*e, {{"Range", "bytes=0-1,5-6"}}, r), RangeAnswer::multipart);
  MultipartRanges m(*e, r, "B0");
  EXPECT_EQ(m.fields().find("text/plain"), std::string::npos) << m.fields();
  EXPECT_NE(m.fields().find("ETag: \"m\"\r\n"), std::string::npos) << m.fields();
  EXPECT_NE(m.fields().find("Content-Type: multipart/byteranges; boundary=B0\r\n"), std::string::npos);
  std::string body;
  for (size_t i = 0; i < r.count; ++i) {
    body.append(m.part_head(i));
    body.append(e->body, r.range[i].first, r.range[i].last - r.range[i].first + 1);
  }
  body.append(m.tail());
  EXPECT_EQ(body,
            "\r\n--B0\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01"
            "\r\n--B0\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-6/10\r\n\r\n56"
            "\r\n--B0--\r\n");
  EXPECT_EQ(m.body_bytes(), body.size());
  // Without a stored Content-Type, the parts have none either.
  test_support::EntrySpec bare;
  bare.body = "0123456789";
  EntryRef b = test_support::make_entry(bare);
  MultipartRanges mb(*b, r, "B0");
  EXPECT_EQ(mb.part_head(0), "\r\n--B0\r\nContent-Range: bytes 0-1/10\r\n\r\n");
}

}  // namespace
}  // namespace ringmaster::cache
