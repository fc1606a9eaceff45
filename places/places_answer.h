// PlacesAnswer: what one upstream reply means for WHATSAT, as a legacy-shaped Nearby Search object
// (html_attributions, results, status, error_message when not OK), plus whether another attempt is
// worth making; and the two ways an answer becomes reply bytes: cut to a client's bound, or an
// error reply built from a status and a message.
//
// Pure values and functions; thread-safe as values are (a shared answer is read-only).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

namespace places {

struct PlacesAnswer {
  std::shared_ptr<rapidjson::Document> doc;  // an object in the legacy shape; never null
  std::string status;                        // doc's "status"
  bool retryable = false;                    // a transient failure: another attempt may succeed
  std::string summary;                       // for the log: "status OK, 5 results" ...
};

// An answer with no results: {"error_message": message, "html_attributions": [], "results": [],
// "status": status}. `retryable` as given.
PlacesAnswer error_answer(std::string_view status, std::string_view message, bool retryable = false);

// The answer as reply JSON in Google's legacy layout, with at most `bound` results (the first ones).
std::string render_answer(const PlacesAnswer& answer, int bound);

// error_answer(status, message) rendered: the reply for a request that got no usable answer.
std::string error_reply(std::string_view status, std::string_view message);

// `text` with every occurrence of `secret` (and of its percent-encoded form) replaced by "***", so
// that an API key never reaches a log line or a reply. An empty secret changes nothing.
std::string redact(std::string_view text, std::string_view secret);

}  // namespace places
