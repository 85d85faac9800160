// ParserCore: what the request and response parsers share — the llhttp plumbing, the copy of
// the head in parser-owned storage, field validation and classification, the framing facts,
// and body de-framing/re-framing. Each parser derives from it (CRTP, so llhttp's C callbacks
// dispatch without virtual calls) and adds its start line and its end-of-head judgement.
//
// Storage: head bytes arrive in buffers the caller recycles, so each read's share of the
// head is copied, whole, into an Arena (one memcpy per read, not one per token) and llhttp
// parses that copy. Consecutive reads land back to back, so a token split across reads is
// still one contiguous span. Tokens are kept as offsets, because the arena may grow when
// the next read is appended; views are made once at the end of the head and stay valid
// until the next reset. Nothing appends to the arena while llhttp runs on it: the
// end-of-head work (joins, target rewriting) happens after llhttp has paused. Arena and
// vectors keep their capacity across resets: the steady state allocates nothing.
//
// Body: a Content-Length or close-delimited body is copied through without llhttp (a
// length countdown is all it needs). Chunked bodies go through llhttp's chunk parser; each
// data span is re-framed as one chunk (or passed raw), extensions and trailers are dropped.
#pragma once

#include <llhttp.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "http/field_rules.h"
#include "http/head_scanner.h"
#include "ringmaster/base/byte_buffer.h"
#include "ringmaster/base/check.h"
#include "ringmaster/http/message.h"
#include "ringmaster/http/wire.h"

namespace ringmaster::http::detail {

struct Span {
  uint32_t offset = 0;
  uint32_t length = 0;
};

struct FieldSpan {
  Span name;
  Span value;
};

// Growable byte storage addressed by offsets.
class Arena {
 public:
  explicit Arena(size_t initial_capacity) { grow(initial_capacity); }
  ~Arena() { std::free(data_); }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  void clear() { size_ = 0; }
  uint32_t size() const { return size_; }
  const char* data() const { return data_; }
  std::string_view view(Span s) const { return {data_ + s.offset, s.length}; }
  Span span_from(uint32_t start) const { return {start, size_ - start}; }

  void append(const char* p, size_t n) {
    if (n == 0) return;
    if (n > capacity_ - size_) grow(size_ + n);
    std::memcpy(data_ + size_, p, n);
    size_ += static_cast<uint32_t>(n);
  }
  // Appends a copy of bytes already in the arena (safe across growth).
  void append_copy(Span s) {
    if (s.length == 0) return;
    if (s.length > capacity_ - size_) grow(size_ + s.length);
    std::memcpy(data_ + size_, data_ + s.offset, s.length);
    size_ += s.length;
  }

 private:
  void grow(size_t need) {
    size_t cap = capacity_ ? capacity_ : 1024;
    while (cap < need) cap *= 2;
    RM_CHECK(cap <= UINT32_MAX);  // offsets are 32-bit; the head limits keep us far below
    char* fresh = static_cast<char*>(std::realloc(data_, cap));
    RM_CHECK(fresh != nullptr);
    data_ = fresh;
    capacity_ = static_cast<uint32_t>(cap);
  }

  char* data_ = nullptr;
  uint32_t size_ = 0;
  uint32_t capacity_ = 0;
};

struct CoreLimits {
  uint32_t start_line_bytes_max;
  uint32_t head_bytes_max;   // also the bound on a trailer section
  uint32_t field_count_max;  // also the bound on trailer lines
  uint64_t body_bytes_max;
};

// Framing-relevant facts gathered from the fields; each parser judges them at the end of
// the head with its own rules and statuses.
struct FramingFields {
  uint32_t content_length_count = 0;
  uint32_t transfer_encoding_count = 0;
  uint64_t content_length = 0;
  TransferCoding transfer_coding = TransferCoding::invalid;
  bool connection_close = false;
  bool connection_keep_alive = false;
};

// Bytes of chunk framing allowed between two runs of chunk data: the CRLF ending a chunk
// plus the next chunk-size line with its extensions. Extensions are dropped, but without a
// bound a client could stream them (or leading zeros of a chunk size) forever.
inline constexpr uint64_t kChunkFramingBytesMax = 4096;

enum class Phase : uint8_t { head, body, trailers, done, error };

// Members are public: this is a private header, and the public parser classes read the
// state directly rather than through a wall of accessors.
template <class Derived>
class ParserCore {
 public:
  ParserCore(llhttp_type_t type, const CoreLimits& limits) : type_(type), limits_(limits), arena_(4096) {
    fields_.reserve(32);
    via_parts_.reserve(4);
    connection_tokens_.reserve(4);
  }

  Derived& derived() { return static_cast<Derived&>(*this); }

  // Ready for a new message. Re-initialising llhttp is a small memset and leaves no state
  // behind from a paused or failed message.
  void core_reset() {
    llhttp_init(&llhttp_, type_, &settings());
    llhttp_.data = static_cast<Derived*>(this);
    scanner_.reset(type_ == HTTP_REQUEST ? HeadScanner::Mode::request : HeadScanner::Mode::response,
                   limits_.start_line_bytes_max, limits_.head_bytes_max, limits_.field_count_max);
    arena_.clear();
    token_ = {};
    token_open_ = false;
    name_ = {};
    fields_.clear();
    via_parts_.clear();
    connection_tokens_.clear();
    framing_fields_ = {};
    phase_ = Phase::head;
    interim_ = false;
    message_complete_ = false;
    framing_ = BodyFraming::none;
    remaining_ = 0;
    body_bytes_ = 0;
    framing_run_ = 0;
    error_status_ = 0;
    error_reason_ = {};
  }

  // ---- head ----------------------------------------------------------------------------

  ParseResult parse_head_impl(const char* data, size_t len) {
    if (phase_ == Phase::error) return {ParseStatus::error, 0};
    RM_CHECK(phase_ == Phase::head);
    size_t off = 0;
    for (;;) {
      HeadScanner::Result scan = scanner_.scan(data + off, len - off);
      uint32_t copy_at = arena_.size();
      arena_.append(data + off, scan.offset);
      const char* copy = arena_.data() + copy_at;
      llhttp_errno_t err = llhttp_execute(&llhttp_, copy, scan.offset);
      if (err == HPE_PAUSED) {
        // Paused by on_headers_complete: error_pos is the first byte after the head.
        size_t end = off + static_cast<size_t>(llhttp_get_error_pos(&llhttp_) - copy);
        llhttp_resume(&llhttp_);
        if (derived().on_head_complete() != 0) return {ParseStatus::error, 0};
        if (interim_) {  // a 1xx response: drop it and parse the next head from here
          derived().reset_message();
          off = end;
          continue;
        }
        return {ParseStatus::head_done, end};
      }
      if (err != HPE_OK) return fail_llhttp(err, copy, scan.offset);
      if (scan.verdict == HeadScanner::Verdict::error) return fail_scan();
      // The scanner saw the end of the head but llhttp did not: they disagree on the
      // grammar, so neither can be trusted with this input.
      if (scan.verdict == HeadScanner::Verdict::end) return fail_result(400, "malformed head");
      return {ParseStatus::need_more, len};
    }
  }

  // Called by the derived parser at the end of a valid head.
  void begin_body(BodyFraming framing, uint64_t length) {
    framing_ = framing;
    remaining_ = length;
    bool empty = framing == BodyFraming::none || (framing == BodyFraming::content_length && length == 0);
    phase_ = empty ? Phase::done : Phase::body;
  }

  // ---- body ----------------------------------------------------------------------------

  ParseResult parse_body_impl(const char* data, size_t len, base::ByteBuffer& out, bool rechunk) {
    if (phase_ == Phase::error) return {ParseStatus::error, 0};
    if (phase_ == Phase::done) return {ParseStatus::message_done, 0};
    RM_CHECK(phase_ != Phase::head);
    out_ = &out;
    rechunk_ = rechunk;
    switch (framing_) {
      case BodyFraming::content_length: {
        size_t n = len < remaining_ ? len : static_cast<size_t>(remaining_);
        emit(data, n);
        remaining_ -= n;
        body_bytes_ += n;
        if (remaining_ > 0) return {ParseStatus::need_more, n};
        finish_body();
        return {ParseStatus::message_done, n};
      }
      case BodyFraming::close_delimited:
        emit(data, len);
        body_bytes_ += len;
        return {ParseStatus::need_more, len};
      case BodyFraming::chunked:
        return parse_chunked(data, len);
      case BodyFraming::none:
        break;
    }
    RM_CHECK(false);
    return {ParseStatus::error, 0};
  }

  void finish_body() {
    if (rechunk_) wire::last_chunk(*out_);
    phase_ = Phase::done;
  }

  ParseResult parse_chunked(const char* data, size_t len) {
    size_t off = 0;
    for (;;) {
      const char* base = data + off;
      size_t feed = len - off;
      HeadScanner::Result scan{HeadScanner::Verdict::need_more, feed};
      if (phase_ == Phase::trailers) {
        scan = scanner_.scan(base, feed);
        feed = scan.offset;
      }
      cursor_ = base;
      llhttp_errno_t err = llhttp_execute(&llhttp_, base, feed);
      if (err == HPE_PAUSED) {
        const char* at = llhttp_get_error_pos(&llhttp_);
        size_t end = off + static_cast<size_t>(at - base);
        llhttp_resume(&llhttp_);
        if (message_complete_) {
          finish_body();
          return {ParseStatus::message_done, end};
        }
        // Paused at the last chunk ("0\r\n"): the trailer section follows. It is a field
        // block with the same llhttp gaps as a head, so it goes through the scanner too.
        framing_run_ += static_cast<uint64_t>(at - cursor_);
        if (framing_run_ > kChunkFramingBytesMax) return fail_result(400, "chunk line too long");
        phase_ = Phase::trailers;
        scanner_.reset(HeadScanner::Mode::trailers, 0, limits_.head_bytes_max, limits_.field_count_max);
        off = end;
        continue;
      }
      if (err != HPE_OK) return fail_llhttp(err, base, feed);
      if (phase_ == Phase::trailers) {
        if (scan.verdict == HeadScanner::Verdict::error) return fail_scan();
        if (scan.verdict == HeadScanner::Verdict::end) return fail_result(400, "malformed trailers");
      } else {
        framing_run_ += static_cast<uint64_t>(base + feed - cursor_);
        if (framing_run_ > kChunkFramingBytesMax) return fail_result(400, "chunk line too long");
      }
      return {ParseStatus::need_more, len};
    }
  }

  // Appends body bytes to out_, as one chunk when re-chunking.
  void emit(const char* p, size_t n) {
    if (n == 0) return;
    if (!rechunk_) {
      out_->append(p, n);
      return;
    }
    wire::chunk(*out_, p, n);
  }

  // ---- fields --------------------------------------------------------------------------

  // The token llhttp just completed; its pieces are contiguous in the arena.
  Span take_token() {
    Span s = token_open_ ? token_ : Span{};
    token_open_ = false;
    return s;
  }

  Span trim_span(Span s) const {
    const char* p = arena_.data() + s.offset;
    while (s.length > 0 && is_ows(p[0])) {
      ++p;
      ++s.offset;
      --s.length;
    }
    while (s.length > 0 && is_ows(p[s.length - 1])) --s.length;
    return s;
  }

  Span span_of(std::string_view v) const {
    return {static_cast<uint32_t>(v.data() - arena_.data()), static_cast<uint32_t>(v.size())};
  }

  int process_field(Span name_span, Span value_span) {
    std::string_view name = arena_.view(name_span);
    // llhttp (strict) accepts exactly the tchar bytes in a name, as a unit test checks for
    // all 256 byte values, so only emptiness, which it allows, is ours to refuse.
    if (name.empty()) return fail(400, "empty field name");
    value_span = trim_span(value_span);
    std::string_view value = arena_.view(value_span);
    // llhttp enforces this class too; it is the bytes we re-serialise, so it is checked
    // again here, a word at a time, in case a future llhttp is laxer.
    if (!is_field_value(value)) return fail(400, "bad field value");
    FieldKind kind = classify_field(name);
    switch (kind) {
      case FieldKind::other:
        fields_.push_back({name_span, value_span});
        return 0;
      case FieldKind::content_length:
        if (++framing_fields_.content_length_count > 1) return fail(400, "duplicate Content-Length");
        if (!parse_decimal(value, framing_fields_.content_length)) return fail(400, "bad Content-Length");
        return 0;
      case FieldKind::transfer_encoding:
        if (++framing_fields_.transfer_encoding_count > 1) return fail(400, "multiple Transfer-Encoding");
        framing_fields_.transfer_coding = classify_transfer_encoding(value);
        return 0;
      case FieldKind::connection:
        return process_connection(value);
      case FieldKind::via:
        if (!value.empty()) via_parts_.push_back(value_span);
        return 0;
      case FieldKind::keep_alive:
      case FieldKind::proxy_connection:
      case FieldKind::te:
      case FieldKind::trailer:
      case FieldKind::upgrade:
        return 0;  // hop-by-hop: never forwarded
      case FieldKind::host:
      case FieldKind::http2_settings:
      case FieldKind::expect:
      case FieldKind::x_forwarded_for:
      case FieldKind::x_forwarded_proto:
      case FieldKind::x_request_id:
        break;
    }
    return derived().on_special_field(kind, name_span, value_span);
  }

  // Connection: close / keep-alive set the persistence wish; every other token names a
  // field that is hop-by-hop for this message and is dropped at the end of the head (it may
  // come before or after the Connection field). Naming a framing field or Host is the
  // classic trick to make a proxy strip what the backend needs: refused.
  int process_connection(std::string_view value) {
    bool names_framing = false;
    bool ok = for_each_token(value, [&](std::string_view token) {
      if (iequals_lower(token, "close")) {
        framing_fields_.connection_close = true;
        return;
      }
      if (iequals_lower(token, "keep-alive")) {
        framing_fields_.connection_keep_alive = true;
        return;
      }
      FieldKind kind = classify_field(token);
      if (kind == FieldKind::content_length || kind == FieldKind::transfer_encoding || kind == FieldKind::host) {
        names_framing = true;
      } else if (kind == FieldKind::other || Derived::kKeepsSpecialFields) {
        connection_tokens_.push_back(span_of(token));
      }
    });
    if (!ok) return fail(400, "bad Connection");
    if (names_framing) return fail(400, "Connection names a framing field");
    return 0;
  }

  // Joins list values with ", " (appends to the arena when there is more than one).
  Span join(const std::vector<Span>& parts) {
    if (parts.empty()) return {};
    if (parts.size() == 1) return parts[0];
    uint32_t start = arena_.size();
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i > 0) arena_.append(", ", 2);
      arena_.append_copy(parts[i]);
    }
    return arena_.span_from(start);
  }

  // Views of the kept fields, minus those named by Connection. Call after the last arena
  // append of the head.
  void resolve_fields(std::vector<Field>& out) const {
    out.clear();
    for (const FieldSpan& f : fields_) {
      std::string_view name = arena_.view(f.name);
      bool named = false;
      for (Span t : connection_tokens_) named = named || iequals(name, arena_.view(t));
      if (!named) out.push_back({name, arena_.view(f.value)});
    }
  }

  std::string_view view(Span s) const { return arena_.view(s); }

  // ---- errors --------------------------------------------------------------------------

  // Records the first error (callbacks return this to llhttp to stop it).
  int fail(uint16_t status, std::string_view reason) {
    if (error_status_ == 0) {
      error_status_ = status;
      error_reason_ = reason;
    }
    phase_ = Phase::error;
    return -1;
  }

  ParseResult fail_result(uint16_t status, std::string_view reason) {
    fail(status, reason);
    return {ParseStatus::error, 0};
  }

  ParseResult fail_llhttp(llhttp_errno_t err, const char* base, size_t fed) {
    if (error_status_ != 0) return fail_result(error_status_, error_reason_);  // our callback
    const char* pos = llhttp_get_error_pos(&llhttp_);
    // An unknown method made of token characters is a method we do not implement (501);
    // anything else in its place is garbage (400).
    if (err == HPE_INVALID_METHOD && pos != nullptr && pos >= base && pos < base + fed &&
        kTchar[static_cast<unsigned char>(*pos)]) {
      return fail_result(501, "unknown method");
    }
    const char* reason = llhttp_get_error_reason(&llhttp_);
    return fail_result(400, reason != nullptr ? reason : "bad message");
  }

  ParseResult fail_scan() {
    switch (scanner_.error()) {
      case HeadScanner::Error::bare_lf:
        return fail_result(400, "bare LF");
      case HeadScanner::Error::bare_cr:
        return fail_result(400, "bare CR");
      case HeadScanner::Error::obs_fold:
        return fail_result(400, "obs-fold");
      case HeadScanner::Error::start_line_too_long:
        return fail_result(414, "request line too long");
      case HeadScanner::Error::head_too_large:
        return fail_result(431, phase_ == Phase::trailers ? "trailers too large" : "head too large");
      case HeadScanner::Error::too_many_fields:
        return fail_result(431, "too many fields");
      case HeadScanner::Error::bad_start_line:
        return fail_result(400, "bad start line");
      case HeadScanner::Error::bad_version:
        return fail_result(400, "bad version");
      case HeadScanner::Error::unsupported_version:
        return fail_result(505, "unsupported version");
      case HeadScanner::Error::bad_status_code:
        return fail_result(400, "bad status code");
      case HeadScanner::Error::bad_reason:
        return fail_result(400, "bad reason phrase");
      case HeadScanner::Error::none:
        break;
    }
    return fail_result(400, "bad head");
  }

  // ---- llhttp callbacks ----------------------------------------------------------------

  static Derived& self(llhttp_t* p) { return *static_cast<Derived*>(p->data); }

  // A piece of a token (the whole token, or its part in this read). llhttp is running on
  // the arena copy, so the piece's offset is its place in the arena.
  static int cb_span(llhttp_t* p, const char* at, size_t n) {
    Derived& s = self(p);
    if (s.phase_ != Phase::head) return 0;  // trailers: llhttp runs on the caller's buffer
    uint32_t offset = static_cast<uint32_t>(at - s.arena_.data());
    if (!s.token_open_) {
      s.token_ = {offset, 0};
      s.token_open_ = true;
    }
    s.token_.length = offset + static_cast<uint32_t>(n) - s.token_.offset;
    return 0;
  }
  static int cb_method_complete(llhttp_t* p) {
    Derived& s = self(p);
    return s.on_method(s.take_token());
  }
  static int cb_url_complete(llhttp_t* p) {
    Derived& s = self(p);
    return s.on_url(s.take_token());
  }
  static int cb_status_complete(llhttp_t* p) {
    Derived& s = self(p);
    return s.on_status(s.take_token());
  }
  static int cb_field_complete(llhttp_t* p) {
    Derived& s = self(p);
    if (s.phase_ == Phase::head) s.name_ = s.take_token();
    return 0;
  }
  static int cb_value_complete(llhttp_t* p) {
    Derived& s = self(p);
    if (s.phase_ != Phase::head) return 0;  // trailers are dropped
    return s.process_field(s.name_, s.take_token());
  }
  // The end-of-head work runs after llhttp returns (it may grow the arena llhttp is
  // reading); here we only stop llhttp exactly at the end of the head.
  static int cb_headers_complete(llhttp_t* p) { return self(p).phase_ == Phase::head ? HPE_PAUSED : 0; }
  static int cb_chunk_header(llhttp_t* p) {
    Derived& s = self(p);
    uint64_t size = p->content_length;
    if (size == 0) return HPE_PAUSED;  // last chunk: the trailers need the scanner
    if (size > s.limits_.body_bytes_max - s.body_bytes_) return s.fail(413, "body too large");
    return 0;
  }
  static int cb_body(llhttp_t* p, const char* at, size_t n) {
    Derived& s = self(p);
    s.framing_run_ += static_cast<uint64_t>(at - s.cursor_);
    if (s.framing_run_ > kChunkFramingBytesMax) return s.fail(400, "chunk line too long");
    s.framing_run_ = 0;
    s.cursor_ = at + n;
    s.body_bytes_ += n;  // within the limit: cb_chunk_header checked the whole chunk
    s.emit(at, n);
    return 0;
  }
  static int cb_message_complete(llhttp_t* p) {
    self(p).message_complete_ = true;
    return HPE_PAUSED;  // never run into the next pipelined message
  }

  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t s = [] {
      llhttp_settings_t t;
      llhttp_settings_init(&t);
      if constexpr (Derived::kType == HTTP_REQUEST) {
        t.on_method = &cb_span;
        t.on_method_complete = &cb_method_complete;
        t.on_url = &cb_span;
        t.on_url_complete = &cb_url_complete;
      } else {
        t.on_status = &cb_span;
        t.on_status_complete = &cb_status_complete;
      }
      t.on_header_field = &cb_span;
      t.on_header_field_complete = &cb_field_complete;
      t.on_header_value = &cb_span;
      t.on_header_value_complete = &cb_value_complete;
      t.on_headers_complete = &cb_headers_complete;
      t.on_chunk_header = &cb_chunk_header;
      t.on_body = &cb_body;
      t.on_message_complete = &cb_message_complete;
      return t;
    }();
    return s;
  }

  // ---- state ---------------------------------------------------------------------------

  llhttp_t llhttp_{};
  const llhttp_type_t type_;
  CoreLimits limits_;  // only body_bytes_max changes (RequestParser::set_body_bytes_max)
  HeadScanner scanner_;
  Arena arena_;
  Span token_;                // the token being received
  bool token_open_ = false;   // token_ has had a piece since the last *_complete
  Span name_;                 // the field name whose value is being received
  std::vector<FieldSpan> fields_;
  std::vector<Span> via_parts_;
  std::vector<Span> connection_tokens_;
  FramingFields framing_fields_;
  Phase phase_ = Phase::head;
  bool interim_ = false;           // the head just parsed was a 1xx response
  bool message_complete_ = false;  // llhttp reached the end of the message
  bool rechunk_ = false;
  BodyFraming framing_ = BodyFraming::none;
  uint64_t remaining_ = 0;    // content_length bodies: bytes still to come
  uint64_t body_bytes_ = 0;   // decoded body bytes so far
  uint64_t framing_run_ = 0;  // chunked: framing bytes since the last data byte
  const char* cursor_ = nullptr;  // chunked: end of the last data span in this execute call
  base::ByteBuffer* out_ = nullptr;
  uint16_t error_status_ = 0;
  std::string_view error_reason_;
};

}  // namespace ringmaster::http::detail
