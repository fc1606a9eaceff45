// Fuzz harness: herd-load's JSON check (tools/load/json_check.h) against rapidjson's reading of the
// same bytes. Properties: the same verdict; for an object, the same count of the first "results"
// array and the same text of the first "status" string as a DOM's first members of those names;
// no read past the input (it is given in a buffer of exactly its size, and ASan watches). Inputs
// that the two read differently by design are skipped: a NUL byte (rapidjson takes it for the
// end), leading bytes of a UTF-8 byte order mark (rapidjson, reading with a length, skips each of
// EF BB BF if present; the check refuses them, as a reply must not start with one), nesting past
// kMaxJsonDepth (the check refuses it), numbers past a double's range (rapidjson refuses them).
// Dictionary: json.dict
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "test/fuzz/fuzz_check.h"
#include "test/json_reference.h"
#include "tools/load/json_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<char[]> exact(new char[size ? size : 1]);
  if (size) std::memcpy(exact.get(), data, size);
  const std::string_view text(exact.get(), size);
  herd_load::JsonShape shape;
  const bool ok = herd_load::check_json_shape(text, &shape);
  FUZZ_CHECK(ok == shape.valid);
  FUZZ_CHECK(ok || shape.error_offset <= size);

  size_t opened = 0;
  for (char c : text) opened += c == '[' || c == '{';
  const auto first = static_cast<unsigned char>(text.empty() ? 0 : text[0]);
  if (first == 0xEF || first == 0xBB || first == 0xBF) return 0;
  if (text.find('\0') != std::string_view::npos || opened > static_cast<size_t>(herd_load::kMaxJsonDepth)) return 0;
  herd_load::JsonShape want;
  if (!json_reference::rapidjson_shape(text, &want)) return 0;
  FUZZ_CHECK(json_reference::same_shape(shape, want));
  return 0;
}
