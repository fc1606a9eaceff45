// The offline places provider: answers Nearby Search from the in-memory GeoNames gazetteer, in the
// legacy JSON shape and byte layout Google uses for cities.
#pragma once

#include <memory>
#include <string>

#include "places/gazetteer.h"
#include "places/places_provider.h"

namespace places {

// Renders gazetteer cities as Nearby Search results. Immutable after construction: one instance
// may be shared by every event loop.
class OfflinePlaces : public PlacesProvider {
 public:
  // `gazetteer` must be non-null; it is shared, never modified. Thread-safe.
  explicit OfflinePlaces(std::shared_ptr<const Gazetteer> gazetteer);

  // The Nearby Search answer for `q`: `{"html_attributions": [], "results": [...], "status":
  // "OK"}` with at most q.bound cities within q.radius_m (ranked by population, then distance,
  // then geoname id), or `"results": []` and `"status": "ZERO_RESULTS"` when none is (or when
  // q.bound ≤ 0). Google's legacy layout, no trailing newline, never two newlines in a row.
  // Thread-safe: const and touches no shared mutable state.
  std::string render(const PlacesQuery& q) const;

  // Calls done(render(q)) synchronously, on the calling thread (`loop` is not needed). Thread-safe.
  void nearby(reactor::EventLoop& loop, const PlacesQuery& q, Done done) override;

 private:
  std::shared_ptr<const Gazetteer> gazetteer_;
};

}  // namespace places
