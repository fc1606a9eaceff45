// The offline places provider: answers Nearby Search from the in-memory GeoNames gazetteer, in the
// legacy JSON shape and byte layout Google uses for cities.
//
// A city's result object never changes, so its costly parts (six numbers in Google's `%.16g`) are
// formatted once, at construction, and kept packed four bits to a character; a reply is a radius
// query plus copies of constant layout text and these pieces.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "places/gazetteer.h"
#include "places/places_provider.h"

namespace places {

// Renders gazetteer cities as Nearby Search results. Immutable after construction: one instance
// may be shared by every event loop.
class OfflinePlaces : public PlacesProvider {
 public:
  // `gazetteer` must be non-null; it is shared, never modified. Formats every city's numbers
  // (about 50 bytes a city kept; a few hundred milliseconds for the bundled file). Thread-safe.
  explicit OfflinePlaces(std::shared_ptr<const Gazetteer> gazetteer);

  // The Nearby Search answer for `q`: `{"html_attributions": [], "results": [...], "status":
  // "OK"}` with at most q.bound cities within q.radius_m (ranked by population, then distance,
  // then geoname id), or `"results": []` and `"status": "ZERO_RESULTS"` when none is (or when
  // q.bound ≤ 0). Google's legacy layout, no trailing newline, never two newlines in a row.
  // Thread-safe: const and touches no shared mutable state.
  std::string render(const PlacesQuery& q) const;

  // Appends render(q) to `out`. Allocates nothing once `out` has the room and this thread has
  // answered a query with as many matches before. Thread-safe.
  void append_answer(std::string& out, const PlacesQuery& q) const;

  // The same answer for the given cities (already chosen and ranked), formatting every field on
  // each call: the straightforward renderer, kept as the reference for tests. Thread-safe.
  static std::string render_cities(const std::vector<const City*>& cities);

  // Calls done(render(q)) synchronously, on the calling thread (`loop` is not needed). Thread-safe.
  void nearby(reactor::EventLoop& loop, const PlacesQuery& q, Done done, Wanted wanted = {}) override;

  // append_answer(out, q); always true. Thread-safe.
  bool answer_now(const PlacesQuery& q, std::string& out) const override;

  // Bytes used by the pre-formatted numbers (the packed text and its offsets). Thread-safe.
  size_t prerendered_bytes() const { return packed_.size() + packed_at_.size() * sizeof(uint32_t); }

 private:
  // Appends city `i`'s result object, from its packed numbers.
  void append_result(std::string& out, uint32_t i) const;
  // Writes city `i`'s result object at `w` and returns its end; only for a city whose flags are 0
  // (packed, name needing no escape), with room for kMaxResultBytesBesidesName + 2 × its name.
  char* write_plain_result(char* w, uint32_t i) const;

  std::shared_ptr<const Gazetteer> gazetteer_;
  // City i's pieces start at byte packed_at_[i] of packed_: a flags byte, then lat, lng,
  // northeast lat, lng, southwest lat, lng, each as 4-bit codes of its characters (low nibble
  // first) ended by a 0xf nibble and padded with one to a whole byte.
  std::vector<uint32_t> packed_at_;
  std::vector<uint8_t> packed_;
};

}  // namespace places
