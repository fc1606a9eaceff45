// read_json: see json_reader.h.
#include "places/json_reader.h"

#include <locale.h>
#include <stdlib.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <string>

#include <rapidjson/memorystream.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/reader.h>

namespace places {
namespace {

// The C locale, for strtod_l: a JSON number's decimal point is '.', whatever locale the process
// runs in. Made once; never freed (it lives as long as the process). Null if it could not be made
// (no memory), and strtod then runs in the process's locale, which the server never changes.
locale_t c_locale() {
  static const locale_t loc = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(nullptr));
  return loc;
}

// SAX events from the reader into the document, each number converted here from its text.
class NumbersFromText {
 public:
  explicit NumbersFromText(rapidjson::Document& doc) : doc_(doc) {}

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  // The reader calls these only without kParseNumbersAsStringsFlag; they forward for completeness.
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned u) { return doc_.Uint(u); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t u) { return doc_.Uint64(u); }
  bool Double(double d) { return doc_.Double(d); }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return doc_.String(s, n, copy); }
  bool StartObject() { return doc_.StartObject(); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return doc_.Key(s, n, copy); }
  bool EndObject(rapidjson::SizeType members) { return doc_.EndObject(members); }
  bool StartArray() { return doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) { return doc_.EndArray(elements); }

  // `text` is a number by JSON's grammar (the reader checked it): [-] int [. digits] [e [sign] digits].
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    const std::string_view text(s, n);
    const bool minus = !text.empty() && text.front() == '-';
    if (text.find_first_of(".eE") == std::string_view::npos) {
      // An integer: the type rapidjson gives it while it fits, by its magnitude and sign.
      uint64_t mag = 0;
      const char* end = text.data() + text.size();
      const auto r = std::from_chars(text.data() + minus, end, mag);
      if (r.ec == std::errc() && r.ptr == end) {
        if (!minus) return mag <= UINT32_MAX ? doc_.Uint(static_cast<unsigned>(mag)) : doc_.Uint64(mag);
        if (mag <= uint64_t{1} << 31) return doc_.Int(static_cast<int32_t>(0u - static_cast<uint32_t>(mag)));
        if (mag <= uint64_t{1} << 63) return doc_.Int64(static_cast<int64_t>(0 - mag));
      }
    }
    const std::string nul_terminated(text);
    char* end = nullptr;
    const locale_t c = c_locale();
    const double d = c ? strtod_l(nul_terminated.c_str(), &end, c) : std::strtod(nul_terminated.c_str(), &end);
    if (end != nul_terminated.c_str() + nul_terminated.size() || !std::isfinite(d)) {
      too_big_ = true;
      return false;
    }
    return doc_.Double(d);
  }

  bool too_big() const { return too_big_; }

 private:
  rapidjson::Document& doc_;
  bool too_big_ = false;
};

}  // namespace

rapidjson::ParseResult read_json(std::string_view text, rapidjson::Document* doc) {
  rapidjson::ParseResult result;
  auto generate = [&](rapidjson::Document& d) {
    NumbersFromText handler(d);
    rapidjson::Reader reader;
    rapidjson::MemoryStream bytes(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(bytes);
    result = reader.Parse<rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseIterativeFlag>(in, handler);
    if (handler.too_big()) result.Set(rapidjson::kParseErrorNumberTooBig, result.Offset());
    return !result.IsError();
  };
  doc->SetNull();
  doc->Populate(generate);
  return result;
}

}  // namespace places
