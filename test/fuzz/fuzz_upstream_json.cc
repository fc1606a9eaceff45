// Fuzz harness: what the google providers make of an upstream's answer (places/legacy_api.h,
// places/new_api.h): any body, under any HTTP status, interpreted by both APIs and rendered as a
// WHATSAT reply. Properties: there is always an answer object whose status is the one the answer
// reports (found: a status with a NUL was cut short there); the rendered JSON has
// no blank line in it (SPEC: the reply ends in exactly one), begins with '{' and ends with '}'.
// Dictionary: json.dict
#include <cstddef>
#include <cstdint>
#include <string>

#include "http/message.h"
#include "places/legacy_api.h"
#include "places/new_api.h"
#include "places/places_answer.h"
#include "test/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const int kStatuses[] = {200, 200, 200, 200, 400, 401, 403, 404, 429, 500, 503, 504, 302, 204, 418, 0};
  http::Response response;
  response.status = kStatuses[data[0] % (sizeof kStatuses / sizeof kStatuses[0])];
  const int bound = 1 + data[1] % 20;
  response.body.assign(reinterpret_cast<const char*>(data + 2), size - 2);
  response.headers.push_back({"Content-Type", "application/json; charset=UTF-8"});
  const places::LegacyApi legacy("fuzz-key");
  const places::NewApi fresh("fuzz-key");
  for (const places::UpstreamApi* api : {static_cast<const places::UpstreamApi*>(&legacy),
                                         static_cast<const places::UpstreamApi*>(&fresh)}) {
    places::PlacesAnswer answer = api->interpret(response);
    FUZZ_CHECK(answer.doc != nullptr && answer.doc->IsObject());
    // The answer's status is the document's, byte for byte (an upstream may send any string).
    auto status = answer.doc->FindMember("status");
    FUZZ_CHECK(status != answer.doc->MemberEnd() && status->value.IsString());
    FUZZ_CHECK(answer.status == std::string(status->value.GetString(), status->value.GetStringLength()));
    std::string reply = places::render_answer(answer, bound);
    FUZZ_CHECK(!reply.empty() && reply.front() == '{' && reply.back() == '}');
    FUZZ_CHECK(reply.find("\n\n") == std::string::npos);
  }
  return 0;
}
