// The offline gazetteer: decoding of cities.pbf, the latitude-band index and radius queries.
#include "places/gazetteer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numbers>
#include <utility>

namespace places {

namespace {

constexpr double kDegToRad = std::numbers::pi / 180.0;
constexpr double kRadToDeg = 180.0 / std::numbers::pi;

// Index geometry: latitude bands of kBandDeg degrees from -90 to +90.
constexpr double kBandDeg = 0.25;
constexpr size_t kBandCount = 720;  // 180 / kBandDeg
// Slack added to the prefilter box (degrees) so rounding never drops a city that the exact
// haversine test would accept.
constexpr double kBoxSlackDeg = 1e-6;

// Coordinates are stored as round(degrees × 1e5).
constexpr double kCoordScale = 1e5;
constexpr int64_t kMaxLatUnits = 90LL * 100000;
constexpr int64_t kMaxLngUnits = 180LL * 100000;
// A delta larger than this cannot move a coordinate that is in range to another that is (and
// checking it first keeps the running sums far from overflow).
constexpr int64_t kMaxLatDelta = 2 * kMaxLatUnits;
constexpr int64_t kMaxLngDelta = 2 * kMaxLngUnits;

// Protobuf wire types.
constexpr uint32_t kWireVarint = 0;
constexpr uint32_t kWireFixed64 = 1;
constexpr uint32_t kWireBytes = 2;
constexpr uint32_t kWireFixed32 = 5;

size_t band_of(double lat) {
  double b = std::floor((lat + 90.0) / kBandDeg);
  if (b < 0) return 0;
  if (b >= static_cast<double>(kBandCount)) return kBandCount - 1;
  return static_cast<size_t>(b);
}

// The haversine term a = sin²(Δφ/2) + cos φ1 cos φ2 sin²(Δλ/2) for points in degrees, with the
// cosines of the latitudes given (computed as std::cos(lat × kDegToRad)). Every distance in this
// file goes through here, so the index scan and haversine_m() agree to the last bit.
inline double haversine_term(double lat1, double cos_phi1, double lng1, double lat2,
                             double cos_phi2, double lng2) {
  double dphi = lat2 * kDegToRad - lat1 * kDegToRad;
  double dlambda = (lng2 - lng1) * kDegToRad;
  double s1 = std::sin(dphi / 2);
  double s2 = std::sin(dlambda / 2);
  double a = s1 * s1 + cos_phi1 * cos_phi2 * s2 * s2;
  return a > 1.0 ? 1.0 : a;  // rounding near antipodes
}

// Metres from the haversine term.
inline double distance_from_term(double a) { return 2 * kEarthRadiusM * std::asin(std::sqrt(a)); }

// An index entry's coordinates in degrees: the same division parse() made, so the same doubles.
inline double degrees(int32_t units) { return static_cast<double>(units) / kCoordScale; }

int64_t unzigzag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// Outcome of reading one varint.
enum class VarintStatus { kOk, kTruncated, kOverlong };

// Reads a base-128 varint from [*p, end), advancing *p on success. More than 64 bits (a tenth byte
// above 1, or an eleventh byte) is overlong.
VarintStatus read_varint(const unsigned char** p, const unsigned char* end, uint64_t* out) {
  uint64_t v = 0;
  const unsigned char* q = *p;
  for (int shift = 0; shift < 64; shift += 7) {
    if (q == end) return VarintStatus::kTruncated;
    unsigned char byte = *q++;
    if (shift == 63 && byte > 1) return VarintStatus::kOverlong;
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *p = q;
      *out = v;
      return VarintStatus::kOk;
    }
  }
  return VarintStatus::kOverlong;
}

// A decoded record before its strings are moved into the pool.
struct RawRecord {
  bool has_id = false;
  uint64_t id = 0;
  uint64_t population = 0;
  int64_t dlng = 0;
  int64_t dlat = 0;
  std::string_view name, country, admin1;
};

// Decodes the fields of one record occupying [p, end). Returns an empty string on success, else
// what is wrong.
std::string decode_record(const unsigned char* p, const unsigned char* end, RawRecord* r) {
  while (p < end) {
    uint64_t tag;
    if (read_varint(&p, end, &tag) != VarintStatus::kOk) return "bad field tag";
    uint64_t field = tag >> 3;
    uint32_t wire = static_cast<uint32_t>(tag & 7);
    if (field == 0) return "field number 0";
    if (wire == kWireVarint) {
      uint64_t v;
      if (read_varint(&p, end, &v) != VarintStatus::kOk) return "bad varint in field " + std::to_string(field);
      switch (field) {
        case 1: {
          int64_t id = unzigzag(v);
          if (id < 0 || id > std::numeric_limits<uint32_t>::max()) return "geonameid out of range";
          r->has_id = true;
          r->id = static_cast<uint64_t>(id);
          break;
        }
        case 9:
          if (v > std::numeric_limits<uint32_t>::max()) return "population out of range";
          r->population = v;
          break;
        case 10: r->dlng = unzigzag(v); break;
        case 11: r->dlat = unzigzag(v); break;
        default:
          if (field >= 2 && field <= 8) return "field " + std::to_string(field) + " is not a string";
          break;  // unknown varint field: ignored
      }
    } else if (wire == kWireBytes) {
      uint64_t len;
      if (read_varint(&p, end, &len) != VarintStatus::kOk) return "bad length in field " + std::to_string(field);
      if (len > static_cast<uint64_t>(end - p)) return "field " + std::to_string(field) + " overruns its record";
      std::string_view bytes(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
      p += len;
      switch (field) {
        case 2: r->name = bytes; break;
        case 3: r->country = bytes; break;
        case 8: r->admin1 = bytes; break;
        case 1: case 9: case 10: case 11:
          return "field " + std::to_string(field) + " is not a varint";
        default: break;  // cc2, admin3, admin4, feature code, unknown: not kept
      }
    } else if (wire == kWireFixed64 || wire == kWireFixed32) {
      size_t n = wire == kWireFixed64 ? 8 : 4;
      if (static_cast<size_t>(end - p) < n) return "field " + std::to_string(field) + " overruns its record";
      if (field <= 11) return "field " + std::to_string(field) + " has the wrong wire type";
      p += n;
    } else {
      return "unsupported wire type " + std::to_string(wire);
    }
  }
  if (!r->has_id) return "no geonameid";
  return "";
}

void set_error(std::string* error, const std::string& source, const std::string& what) {
  if (error) *error = "gazetteer " + source + ": " + what;
}

}  // namespace

double haversine_m(double lat1, double lng1, double lat2, double lng2) {
  return distance_from_term(haversine_term(lat1, std::cos(lat1 * kDegToRad), lng1, lat2,
                                           std::cos(lat2 * kDegToRad), lng2));
}

std::unique_ptr<Gazetteer> Gazetteer::load(const std::string& path, std::string* error) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below anyway).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    set_error(error, path, err == ENOENT ? std::string("missing (") + std::strerror(err) + ")"
                                         : std::string("cannot open: ") + std::strerror(err));
    return nullptr;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    set_error(error, path, std::string("cannot stat: ") + std::strerror(errno));
    ::close(fd);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISFIFO(st.st_mode) ? "a pipe"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a file";
    set_error(error, path, std::string("not a regular file (") + what + ")");
    ::close(fd);
    return nullptr;
  }
  if (st.st_size > static_cast<off_t>(kMaxFileBytes)) {
    set_error(error, path, "too large: " + std::to_string(st.st_size) + " bytes, the limit is " +
                               std::to_string(kMaxFileBytes));
    ::close(fd);
    return nullptr;
  }
  // Read what fstat promised and no more: a file that grows meanwhile cannot make us read forever.
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      set_error(error, path, std::string("read error: ") + std::strerror(errno));
      ::close(fd);
      return nullptr;
    }
    if (n == 0) break;  // it shrank: parse what there is, which reports a truncated record
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  bytes.resize(got);
  return parse(bytes, path, error);
}

std::unique_ptr<Gazetteer> Gazetteer::parse(std::string_view bytes, const std::string& source,
                                            std::string* error) {
  std::unique_ptr<Gazetteer> g(new Gazetteer());
  if (bytes.empty()) {
    set_error(error, source, "empty file (no records)");
    return nullptr;
  }
  if (bytes.size() > kMaxFileBytes) {
    set_error(error, source, "too large: " + std::to_string(bytes.size()) + " bytes, the limit is " +
                                 std::to_string(kMaxFileBytes));
    return nullptr;
  }
  // Strings are kept in one pool, addressed by offset while it grows; the views are made once it
  // is complete and trimmed.
  g->strings_.reserve(bytes.size());
  struct Offsets {
    uint32_t name, name_len, country, country_len, admin1, admin1_len;
  };
  std::vector<Offsets> offsets;
  offsets.reserve(bytes.size() / 40);
  g->cities_.reserve(bytes.size() / 40);

  const auto* begin = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned char* p = begin;
  const unsigned char* end = begin + bytes.size();
  int64_t acc_lng = 0, acc_lat = 0;
  size_t record = 0;
  auto add = [&](std::string_view s, uint32_t* off, uint32_t* len) {
    *off = static_cast<uint32_t>(g->strings_.size());
    *len = static_cast<uint32_t>(s.size());
    g->strings_.append(s);
  };
  while (p < end) {
    size_t at = static_cast<size_t>(p - begin);
    uint64_t len;
    VarintStatus vs = read_varint(&p, end, &len);
    if (vs == VarintStatus::kTruncated) {
      set_error(error, source, "truncated: record " + std::to_string(record + 1) +
                                   " length cut off at byte " + std::to_string(at));
      return nullptr;
    }
    if (vs == VarintStatus::kOverlong || len == 0) {
      set_error(error, source, "corrupt: bad length of record " + std::to_string(record + 1) +
                                   " at byte " + std::to_string(at));
      return nullptr;
    }
    if (len > static_cast<uint64_t>(end - p)) {
      set_error(error, source, "truncated: record " + std::to_string(record + 1) + " at byte " +
                                   std::to_string(at) + " needs " + std::to_string(len) +
                                   " bytes, " + std::to_string(end - p) + " left");
      return nullptr;
    }
    RawRecord r;
    std::string what = decode_record(p, p + len, &r);
    if (!what.empty()) {
      set_error(error, source, "corrupt: record " + std::to_string(record + 1) + " at byte " +
                                   std::to_string(at) + ": " + what);
      return nullptr;
    }
    p += len;
    if (r.dlng < -kMaxLngDelta || r.dlng > kMaxLngDelta || r.dlat < -kMaxLatDelta ||
        r.dlat > kMaxLatDelta) {
      set_error(error, source, "corrupt: record " + std::to_string(record + 1) + " at byte " +
                                   std::to_string(at) + ": coordinate delta out of range");
      return nullptr;
    }
    acc_lng += r.dlng;
    acc_lat += r.dlat;
    if (acc_lat < -kMaxLatUnits || acc_lat > kMaxLatUnits || acc_lng < -kMaxLngUnits ||
        acc_lng > kMaxLngUnits) {
      set_error(error, source, "corrupt: record " + std::to_string(record + 1) + " at byte " +
                                   std::to_string(at) + ": coordinates out of range");
      return nullptr;
    }
    City c{};
    c.geoname_id = static_cast<uint32_t>(r.id);
    c.lat = static_cast<double>(acc_lat) / kCoordScale;
    c.lng = static_cast<double>(acc_lng) / kCoordScale;
    c.population = static_cast<uint32_t>(r.population);
    g->cities_.push_back(c);
    Offsets o;
    add(r.name, &o.name, &o.name_len);
    add(r.country, &o.country, &o.country_len);
    add(r.admin1, &o.admin1, &o.admin1_len);
    offsets.push_back(o);
    ++record;
  }
  g->cities_.shrink_to_fit();
  g->strings_.shrink_to_fit();  // may move the pool, so views are made only now
  std::string_view pool(g->strings_);
  for (size_t i = 0; i < g->cities_.size(); ++i) {
    const Offsets& o = offsets[i];
    g->cities_[i].name = pool.substr(o.name, o.name_len);
    g->cities_[i].country = pool.substr(o.country, o.country_len);
    g->cities_[i].admin1 = pool.substr(o.admin1, o.admin1_len);
  }
  g->build_index();
  return g;
}

void Gazetteer::build_index() {
  entries_.clear();
  entries_.reserve(cities_.size());
  for (size_t i = 0; i < cities_.size(); ++i) {
    const City& c = cities_[i];
    // parse() made lat and lng as units / kCoordScale with |units| ≤ 18e6, so rounding back is exact.
    entries_.push_back(Entry{static_cast<int32_t>(std::lround(c.lat * kCoordScale)),
                             static_cast<int32_t>(std::lround(c.lng * kCoordScale)),
                             static_cast<uint32_t>(i), c.population});
  }
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    size_t ba = band_of(degrees(a.lat_units)), bb = band_of(degrees(b.lat_units));
    if (ba != bb) return ba < bb;
    if (a.lng_units != b.lng_units) return a.lng_units < b.lng_units;
    return a.city < b.city;
  });
  band_start_.assign(kBandCount + 1, 0);
  for (const Entry& e : entries_) ++band_start_[band_of(degrees(e.lat_units)) + 1];
  for (size_t b = 0; b < kBandCount; ++b) band_start_[b + 1] += band_start_[b];
}

const City* Gazetteer::find(uint32_t geoname_id) const {
  for (const City& c : cities_) {
    if (c.geoname_id == geoname_id) return &c;
  }
  return nullptr;
}

void Gazetteer::scan_band(size_t band, const Box& box, const Probe& probe, size_t limit,
                          std::vector<Hit>& best) const {
  auto first = entries_.begin() + band_start_[band];
  auto last = entries_.begin() + band_start_[band + 1];
  auto it = std::lower_bound(first, last, box.lng_lo,
                             [](const Entry& e, double v) { return degrees(e.lng_units) < v; });
  const auto before = [this](const Hit& a, const Hit& b) { return ranks_before(a, b); };
  for (; it != last; ++it) {
    double lng = degrees(it->lng_units);
    if (lng > box.lng_hi) break;
    double lat = degrees(it->lat_units);
    if (lat < box.lat_lo || lat > box.lat_hi) continue;
    // With `limit` hits in hand, a city less populous than the last of them cannot rank, wherever
    // it lies: no trigonometry for it.
    if (best.size() == limit && it->population < best.front().population) continue;
    // The cosine as haversine_m() computes it, so both agree to the last bit.
    double a = haversine_term(probe.lat, probe.cos_lat, probe.lng, lat, std::cos(lat * kDegToRad), lng);
    if (a > probe.max_term) continue;  // clearly outside: skip the asin
    double d = distance_from_term(a);
    if (d > probe.radius_m) continue;
    const Hit hit{d, it->city, it->population};
    if (best.size() < limit) {
      best.push_back(hit);
      std::push_heap(best.begin(), best.end(), before);
    } else if (ranks_before(hit, best.front())) {
      std::pop_heap(best.begin(), best.end(), before);
      best.back() = hit;
      std::push_heap(best.begin(), best.end(), before);
    }
  }
}

std::vector<const City*> Gazetteer::nearby(double lat, double lng, double radius_m,
                                           size_t limit) const {
  std::vector<Hit> hits;
  size_t n = nearby_hits(lat, lng, radius_m, limit, hits);
  std::vector<const City*> result;
  result.reserve(n);
  for (size_t i = 0; i < n; ++i) result.push_back(&cities_[hits[i].city]);
  return result;
}

size_t Gazetteer::nearby_hits(double lat, double lng, double radius_m, size_t limit,
                              std::vector<Hit>& hits) const {
  hits.clear();
  if (limit == 0 || !(radius_m >= 0) || !std::isfinite(lat) || !std::isfinite(lng)) return 0;

  // Prefilter box. The cap of angular radius delta around latitude phi spans phi ± delta and, when
  // it contains no pole, longitudes lng ± asin(sin delta / cos phi).
  double delta = radius_m / kEarthRadiusM;  // radians
  double dlat = delta * kRadToDeg + kBoxSlackDeg;
  double lat_lo = lat - dlat, lat_hi = lat + dlat;
  bool all_lng = true;
  double dlng = 180.0;
  if (delta < std::numbers::pi / 2 && lat_lo > -90.0 && lat_hi < 90.0) {
    double s = std::sin(delta) / std::cos(lat * kDegToRad);
    if (s < 1.0) {
      dlng = std::asin(s) * kRadToDeg + kBoxSlackDeg;
      all_lng = dlng >= 180.0;
    }
  }

  // Longitude intervals within [-180, 180], split at the antimeridian.
  std::pair<double, double> spans[2];
  size_t span_count = 0;
  if (all_lng) {
    spans[span_count++] = {-180.0, 180.0};
  } else {
    double lo = lng - dlng, hi = lng + dlng;
    if (lo < -180.0) {
      spans[span_count++] = {lo + 360.0, 180.0};
      spans[span_count++] = {-180.0, hi};
    } else if (hi > 180.0) {
      spans[span_count++] = {lo, 180.0};
      spans[span_count++] = {-180.0, hi - 360.0};
    } else {
      spans[span_count++] = {lo, hi};
    }
  }

  // a grows with the distance; any a above sin²(δ/2) is outside the radius. The relative slack
  // covers the rounding of sqrt and asin, so borderline cities still get the exact test.
  double half = std::sin(std::min(delta, std::numbers::pi) / 2);
  Probe probe{lat, lng, std::cos(lat * kDegToRad), radius_m, half * half * (1 + 1e-9) + 1e-300};
  size_t band_lo = band_of(std::max(lat_lo, -90.0));
  size_t band_hi = band_of(std::min(lat_hi, 90.0));
  for (size_t b = band_lo; b <= band_hi; ++b) {
    for (size_t s = 0; s < span_count; ++s) {
      scan_band(b, Box{lat_lo, lat_hi, spans[s].first, spans[s].second}, probe, limit, hits);
    }
  }
  // The heap of the best, in rank order.
  std::sort_heap(hits.begin(), hits.end(), [this](const Hit& a, const Hit& b) { return ranks_before(a, b); });
  return hits.size();
}

}  // namespace places
