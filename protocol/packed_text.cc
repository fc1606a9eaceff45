// Packed text: the 4-bit code tables, the packer and the unpacker.
#include "protocol/packed_text.h"

#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace protocol {

namespace {

constexpr uint8_t kRaw = 14;
constexpr uint8_t kPad = 15;
constexpr uint8_t kNone = 0xff;  // a byte with no code of its own: it goes in a raw run
constexpr size_t kMaxRun = 16;
constexpr char kChars[14] = {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '+', '-', '.', ' '};

constexpr std::array<uint8_t, 256> make_codes() {
  std::array<uint8_t, 256> codes{};
  for (auto& c : codes) c = kNone;
  for (uint8_t k = 0; k < 14; ++k) codes[static_cast<unsigned char>(kChars[k])] = k;
  return codes;
}
constexpr std::array<uint8_t, 256> kCodes = make_codes();

// For each byte whose two codes are both characters: those two characters (else zeros).
constexpr std::array<std::array<char, 2>, 256> make_pairs() {
  std::array<std::array<char, 2>, 256> pairs{};
  for (unsigned b = 0; b < 256; ++b) {
    if ((b >> 4) < kRaw && (b & 15) < kRaw) pairs[b] = {kChars[b >> 4], kChars[b & 15]};
  }
  return pairs;
}
constexpr std::array<std::array<char, 2>, 256> kPairs = make_pairs();

uint8_t code_of(char c) { return kCodes[static_cast<unsigned char>(c)]; }

// Writes 4-bit codes, high half first.
class CodeWriter {
 public:
  explicit CodeWriter(uint8_t* out) : out_(out) {}
  void put(uint8_t code) {
    if (!half_) {
      *out_ = static_cast<uint8_t>(code << 4);
    } else {
      *out_++ |= code;
    }
    half_ = !half_;
  }
  bool aligned() const { return !half_; }
  void put_pair(uint8_t hi, uint8_t lo) { *out_++ = static_cast<uint8_t>(hi << 4 | lo); }
  void finish() {
    if (half_) put(kPad);
  }

 private:
  uint8_t* out_;
  bool half_ = false;
};

// The length of the raw run starting at text[i] (bytes without a code, at most kMaxRun).
size_t run_at(std::string_view text, size_t i) {
  size_t run = 0;
  while (i + run < text.size() && run < kMaxRun && code_of(text[i + run]) == kNone) ++run;
  return run;
}

}  // namespace

size_t packed_size(std::string_view text) {
  size_t codes = 0;
  for (size_t i = 0; i < text.size();) {
    if (code_of(text[i]) != kNone) {
      ++codes;
      ++i;
      continue;
    }
    const size_t run = run_at(text, i);
    codes += 2 + 2 * run;
    i += run;
  }
  return (codes + 1) / 2;
}

void pack_text(std::string_view text, uint8_t* out) {
  CodeWriter w(out);
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const uint8_t c = code_of(text[i]);
    if (c != kNone) {
      // Two characters make a whole byte when the writer is at a byte's start.
      if (w.aligned() && i + 1 < n) {
        const uint8_t d = code_of(text[i + 1]);
        if (d != kNone) {
          w.put_pair(c, d);
          i += 2;
          continue;
        }
      }
      w.put(c);
      ++i;
      continue;
    }
    const size_t run = run_at(text, i);
    w.put(kRaw);
    w.put(static_cast<uint8_t>(run - 1));
    for (size_t k = 0; k < run; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      w.put(static_cast<uint8_t>(b >> 4));
      w.put(static_cast<uint8_t>(b & 15));
    }
    i += run;
  }
  w.finish();
}

#if defined(__SSE2__)
namespace {
// The codes of 16 bytes, and in *ok whether each had one (bit i for byte i).
inline __attribute__((always_inline)) __m128i codes16(const char* p, unsigned* ok) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i t = _mm_sub_epi8(v, _mm_set1_epi8('0'));
  const __m128i digit = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(9)), t);
  const __m128i plus = _mm_cmpeq_epi8(v, _mm_set1_epi8('+'));
  const __m128i minus = _mm_cmpeq_epi8(v, _mm_set1_epi8('-'));
  const __m128i dot = _mm_cmpeq_epi8(v, _mm_set1_epi8('.'));
  const __m128i space = _mm_cmpeq_epi8(v, _mm_set1_epi8(' '));
  *ok = static_cast<unsigned>(_mm_movemask_epi8(
      _mm_or_si128(_mm_or_si128(digit, plus), _mm_or_si128(_mm_or_si128(minus, dot), space))));
  __m128i code = _mm_and_si128(digit, t);
  code = _mm_or_si128(code, _mm_and_si128(plus, _mm_set1_epi8(10)));
  code = _mm_or_si128(code, _mm_and_si128(minus, _mm_set1_epi8(11)));
  code = _mm_or_si128(code, _mm_and_si128(dot, _mm_set1_epi8(12)));
  return _mm_or_si128(code, _mm_and_si128(space, _mm_set1_epi8(13)));
}
}  // namespace
#endif

bool pack_all_coded(const char* text, size_t n, size_t readable, uint8_t* out) {
  size_t i = 0;
  unsigned bad = 0;
  auto scalar = [&](size_t from) {
    for (; from + 2 <= n; from += 2) {
      const uint8_t a = code_of(text[from]), b = code_of(text[from + 1]);
      bad |= (a | b) & 0x80u;
      out[from / 2] = static_cast<uint8_t>(a << 4 | (b & 15));
    }
    if (from < n) {
      const uint8_t a = code_of(text[from]);
      bad |= a & 0x80u;
      out[from / 2] = static_cast<uint8_t>(a << 4 | kPad);
    }
  };
#if defined(__SSE2__)
  // The codes of the 16 bytes at text + at as 8 bytes of pairs at out + at / 2 (at is even); bits of
  // `need` (byte k of the 16 at bit k) whose byte has no code mark the text bad.
  auto chunk = [&](size_t at, unsigned need) {
    unsigned ok = 0;
    const __m128i codes = codes16(text + at, &ok);
    bad |= ~ok & need;
    const __m128i pairs = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(codes, _mm_set1_epi16(0x00ff)), 4),
                                       _mm_srli_epi16(codes, 8));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + at / 2), _mm_packus_epi16(pairs, pairs));
  };
  for (; i + 16 <= n; i += 16) chunk(i, 0xffffu);
  const size_t left = n - i;
  if (left != 0) {
    if (i + 16 <= readable) {
      // Readable bytes follow the text: one more chunk, of which only `left` bytes count.
      chunk(i, (1u << left) - 1);
      if (left & 1) out[(n - 1) / 2] = static_cast<uint8_t>(code_of(text[n - 1]) << 4 | kPad);
    } else if (n >= 16) {
      // At the end of what may be read: the last 16 bytes again (from an even place, so pairs line
      // up), rewriting bytes already written with the same values, and a last odd byte alone.
      const size_t at = (n - 16) & ~size_t{1};
      chunk(at, 0xffffu);
      if (at + 16 < n) scalar(at + 16);
    } else {
      scalar(0);
    }
  }
#else
  scalar(0);
#endif
  return bad == 0;
}

bool unpack_text(const uint8_t* bytes, size_t size, std::string* out) {
  // At most two characters per byte: write into room made up front, then cut to what was written.
  const size_t start = out->size();
  out->resize(start + 2 * size);
  char* to = out->data() + start;
  const size_t codes = 2 * size;
  auto code = [bytes](size_t k) -> uint8_t {
    const uint8_t b = bytes[k >> 1];
    return (k & 1) ? (b & 15) : static_cast<uint8_t>(b >> 4);
  };
  bool ok = true;
  for (size_t k = 0; k < codes;) {
    if ((k & 1) == 0) {
      const auto& pair = kPairs[bytes[k >> 1]];
      if (pair[0] != 0) {
        to[0] = pair[0];
        to[1] = pair[1];
        to += 2;
        k += 2;
        continue;
      }
    }
    const uint8_t c = code(k++);
    if (c < kRaw) {
      *to++ = kChars[c];
    } else if (c == kRaw) {
      if (k >= codes) {
        ok = false;
        break;
      }
      const size_t run = code(k++) + size_t{1};
      if (k + 2 * run > codes) {
        ok = false;
        break;
      }
      for (size_t r = 0; r < run; ++r, k += 2) {
        *to++ = static_cast<char>(code(k) << 4 | code(k + 1));
      }
    } else if (k != codes) {  // padding anywhere but at the very end
      ok = false;
      break;
    }
  }
  out->resize(static_cast<size_t>(to - out->data()));
  return ok;
}

}  // namespace protocol
