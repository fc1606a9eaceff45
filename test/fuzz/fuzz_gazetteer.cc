// Fuzz harness: the offline gazetteer's reader (places/gazetteer.h) on arbitrary bytes, then radius
// queries on what it accepted. Properties: it returns a gazetteer or an error, never both, with no
// undefined behaviour on any input; every accepted city lies on the globe; nearby() returns at most
// `limit` cities, each within the radius.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "places/gazetteer.h"
#include "test/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto g = places::Gazetteer::parse(bytes, "fuzz.pbf", &error);
  FUZZ_CHECK((g != nullptr) == error.empty());
  if (!g) return 0;
  FUZZ_CHECK(g->size() > 0);
  for (size_t i = 0; i < g->size(); ++i) {
    const places::City& c = g->city(i);
    FUZZ_CHECK(c.lat >= -90 && c.lat <= 90 && c.lng >= -180 && c.lng <= 180);
  }
  // Queries around the first few cities and at the poles and the antimeridian.
  const double probes[][3] = {{90, 0, 50000}, {-90, 180, 50000}, {0, 180, 50000}, {0, -180, 1e7}};
  for (const auto& p : probes) {
    auto near = g->nearby(p[0], p[1], p[2], 5);
    FUZZ_CHECK(near.size() <= 5);
  }
  for (size_t i = 0; i < g->size() && i < 4; ++i) {
    const places::City& c = g->city(i);
    auto near = g->nearby(c.lat, c.lng, 50000, 20);
    FUZZ_CHECK(!near.empty() && near.size() <= 20);
    for (const places::City* n : near) {
      FUZZ_CHECK(places::haversine_m(c.lat, c.lng, n->lat, n->lng) <= 50000 * (1 + 1e-9));
    }
  }
  return 0;
}
