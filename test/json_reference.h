// The reference that herd-load's JSON check (tools/load/json_check.h) is compared with, by the unit
// tests and the fuzz harness alike: what rapidjson's DOM makes of the same bytes, put in the
// check's own terms (JsonShape).
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <string_view>

#include "places/json_reader.h"
#include "tools/load/json_check.h"

namespace json_reference {

// Fills *want from rapidjson's reading of `text` (places::read_json: iterative, with the text's
// length, numbers converted by the C library, for rapidjson's own conversion is not safe on every
// number; fuzz_upstream_json found three): whether it is valid, whether it is an object, and that
// object's first "results" and "status" members (absent, of another type, or present with the
// array's size or the string's text). False when rapidjson cannot serve as the reference: it
// refuses numbers past a double's range, which the grammar allows.
inline bool rapidjson_shape(std::string_view text, herd_load::JsonShape* want) {
  using Seen = herd_load::JsonShape::Seen;
  *want = herd_load::JsonShape{};
  rapidjson::Document doc;
  const rapidjson::ParseResult read = places::read_json(text, &doc);
  if (read.IsError()) return read.Code() != rapidjson::kParseErrorNumberTooBig;
  want->valid = true;
  want->top_is_object = doc.IsObject();
  if (!doc.IsObject()) return true;
  const auto results = doc.FindMember("results");
  if (results != doc.MemberEnd()) {
    want->results = results->value.IsArray() ? Seen::kPresent : Seen::kWrongType;
    if (results->value.IsArray()) want->result_count = results->value.Size();
  }
  const auto status = doc.FindMember("status");
  if (status != doc.MemberEnd()) {
    want->status = status->value.IsString() ? Seen::kPresent : Seen::kWrongType;
    if (status->value.IsString()) want->status_text.assign(status->value.GetString(), status->value.GetStringLength());
  }
  return true;
}

// Whether the check's shape says what the reference says: the same verdict and, for valid text, the
// same shape (for invalid text, what the check read before it stopped is not compared).
inline bool same_shape(const herd_load::JsonShape& got, const herd_load::JsonShape& want) {
  if (got.valid != want.valid) return false;
  if (!got.valid) return true;
  return got.top_is_object == want.top_is_object && got.results == want.results &&
         got.result_count == want.result_count && got.status == want.status && got.status_text == want.status_text;
}

}  // namespace json_reference
