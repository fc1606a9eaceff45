// The simulated clients and the request lines sent for them (herd, redis and null protocols).
#include "tools/load/workload.h"

#include <time.h>

#include <cstdio>

namespace herd_load {

namespace {

// Real cities (lat, lng); each client sits within about 20 km of one of them.
struct City {
  double lat, lng;
};
constexpr City kCities[] = {
    {34.0689, -118.4452}, {40.7128, -74.0060},  {51.5074, -0.1278},   {48.8566, 2.3522},
    {35.6762, 139.6503},  {-33.8688, 151.2093}, {19.4326, -99.1332},  {-23.5505, -46.6333},
    {55.7558, 37.6173},   {28.6139, 77.2090},   {31.2304, 121.4737},  {30.0444, 31.2357},
    {-1.2921, 36.8219},   {37.7749, -122.4194}, {41.8781, -87.6298},  {43.6532, -79.3832},
    {52.5200, 13.4050},   {40.4168, -3.7038},   {1.3521, 103.8198},   {-34.6037, -58.3816},
    {6.5244, 3.3792},     {25.2048, 55.2708},   {59.3293, 18.0686},   {64.1466, -21.9426},
};

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

size_t format_client_time(uint64_t ns, char* out) {
  // Hand-rolled (this runs twice per IAMAT): whole seconds, '.', nine digits of nanoseconds.
  uint64_t sec = ns / 1000000000ull, frac = ns % 1000000000ull;
  char digits[20];
  size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + sec % 10);
    sec /= 10;
  } while (sec > 0);
  size_t len = 0;
  while (n > 0) out[len++] = digits[--n];
  out[len++] = '.';
  for (int i = 8; i >= 0; --i) {
    out[len + static_cast<size_t>(i)] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  return len + 9;
}

Workload::Workload(const Options& options)
    : protocol_(options.protocol),
      radius_(options.radius),
      bound_(static_cast<size_t>(options.bound)),
      redis_key_(options.redis_key),
      last_ts_(new std::atomic<uint64_t>[options.clients]),
      reported_(new std::atomic<bool>[options.clients]),
      geoadds_(new std::atomic<uint32_t>[options.clients]) {
  for (uint32_t k = 0; k < options.clients; ++k) {
    ids_.push_back("c" + std::to_string(k) + ".load");
    uint64_t h = splitmix64(k);
    const City& c = kCities[h % (sizeof kCities / sizeof kCities[0])];
    double dlat = (static_cast<double>((h >> 16) & 0xffff) / 65535.0 - 0.5) * 0.36;
    double dlng = (static_cast<double>((h >> 32) & 0xffff) / 65535.0 - 0.5) * 0.36;
    double lat = c.lat + dlat, lng = c.lng + dlng;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%+.6f%+.6f", lat, lng);
    locations_.push_back(buf);
    std::snprintf(buf, sizeof buf, "%.6f", lat);
    latitudes_.push_back(buf);
    std::snprintf(buf, sizeof buf, "%.6f", lng);
    longitudes_.push_back(buf);
    std::snprintf(buf, sizeof buf, "%.6f", lng > 0 ? lng - 0.0001 : lng + 0.0001);
    other_longitudes_.push_back(buf);
    last_ts_[k].store(0);
    geoadds_[k].store(0);
    reported_[k].store(false);
  }
}

uint64_t Workload::next_timestamp(uint32_t k) {
  uint64_t now = realtime_ns();
  uint64_t last = last_ts_[k].load(std::memory_order_relaxed);
  for (;;) {
    uint64_t ts = now > last ? now : last + 1;
    if (last_ts_[k].compare_exchange_weak(last, ts, std::memory_order_relaxed)) return ts;
  }
}

void Workload::append_iamat(std::string* out, uint32_t k, uint64_t ts) const {
  if (protocol_ == Protocol::kRedis) {
    // Redis accepts inline commands: GEOADD key longitude latitude member
    *out += "GEOADD ";
    *out += redis_key_;
    *out += ' ';
    const bool other = geoadds_[k].fetch_add(1, std::memory_order_relaxed) % 2;
    *out += other ? other_longitudes_[k] : longitudes_[k];
    *out += ' ';
    *out += latitudes_[k];
    *out += ' ';
    *out += ids_[k];
    *out += "\r\n";
    return;
  }
  char tbuf[32];
  size_t tlen = format_client_time(ts, tbuf);
  *out += "IAMAT ";
  *out += ids_[k];
  *out += ' ';
  *out += locations_[k];
  *out += ' ';
  out->append(tbuf, tlen);
  *out += '\n';
}

void Workload::append_whatsat(std::string* out, uint32_t k) const {
  if (protocol_ == Protocol::kRedis) {
    *out += "GEOSEARCH ";
    *out += redis_key_;
    *out += " FROMMEMBER ";
    *out += ids_[k];
    *out += " BYRADIUS ";
    *out += radius_;
    *out += " km ASC COUNT ";
    *out += std::to_string(bound_);
    *out += "\r\n";
    return;
  }
  *out += "WHATSAT ";
  *out += ids_[k];
  *out += ' ';
  *out += radius_;
  *out += ' ';
  *out += std::to_string(bound_);
  *out += '\n';
}

}  // namespace herd_load
