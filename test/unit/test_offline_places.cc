// Unit tests for the offline places stack: the cities.pbf decoder, the gazetteer's radius queries
// (checked against brute force, across the antimeridian and near the poles) and OfflinePlaces'
// Nearby Search JSON.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <numbers>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <rapidjson/document.h>
#include <sys/stat.h>
#include <unistd.h>

#include "places/gazetteer.h"
#include "places/google_json.h"
#include "places/offline_places.h"
#include "reactor/event_loop.h"

namespace {

using places::City;
using places::Gazetteer;

std::string gazetteer_path() {
  const char* env = std::getenv("HERD_GAZETTEER");
  return env && *env ? env : "build/data/cities.pbf";
}

// The real gazetteer, loaded once for all tests (read-only afterwards).
std::shared_ptr<const Gazetteer> real_gazetteer() {
  static std::shared_ptr<const Gazetteer> g = [] {
    std::string error;
    std::shared_ptr<const Gazetteer> loaded = Gazetteer::load(gazetteer_path(), &error);
    REQUIRE_MESSAGE(loaded != nullptr, error << " (run `make build/data/cities.pbf`)");
    return loaded;
  }();
  return g;
}

// --- A tiny cities.pbf encoder for synthetic gazetteers -------------------------------------

struct Rec {
  uint32_t id;
  std::string name;
  double lat, lng;
  uint32_t population = 0;
  std::string country = "XX";
  std::string admin1 = "01";
};

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }

void put_string(std::string& out, int field, const std::string& s) {
  put_varint(out, static_cast<uint64_t>(field) << 3 | 2);
  put_varint(out, s.size());
  out += s;
}

std::string encode(const std::vector<Rec>& recs) {
  std::string file;
  int64_t acc_lng = 0, acc_lat = 0;
  for (const Rec& r : recs) {
    std::string m;
    put_varint(m, 1 << 3);
    put_varint(m, zigzag(r.id));
    put_string(m, 2, r.name);
    put_string(m, 3, r.country);
    put_string(m, 7, "PPL");
    put_string(m, 8, r.admin1);
    if (r.population) {
      put_varint(m, 9 << 3);
      put_varint(m, r.population);
    }
    int64_t lng = std::llround(r.lng * 1e5), lat = std::llround(r.lat * 1e5);
    put_varint(m, 10 << 3);
    put_varint(m, zigzag(lng - acc_lng));
    put_varint(m, 11 << 3);
    put_varint(m, zigzag(lat - acc_lat));
    acc_lng = lng;
    acc_lat = lat;
    put_varint(file, m.size());
    file += m;
  }
  return file;
}

std::unique_ptr<Gazetteer> synthetic(const std::vector<Rec>& recs) {
  std::string error;
  auto g = Gazetteer::parse(encode(recs), "synthetic", &error);
  REQUIRE_MESSAGE(g != nullptr, error);
  return g;
}

// --- Reference answers -------------------------------------------------------------------------

// nearby() by brute force over every city, ranked as specified.
std::vector<const City*> brute_nearby(const Gazetteer& g, double lat, double lng, double radius_m,
                                      size_t limit) {
  std::vector<std::pair<double, const City*>> hits;
  for (size_t i = 0; i < g.size(); ++i) {
    const City& c = g.city(i);
    double d = places::haversine_m(lat, lng, c.lat, c.lng);
    if (d <= radius_m) hits.emplace_back(d, &c);
  }
  std::sort(hits.begin(), hits.end(), [](const auto& a, const auto& b) {
    if (a.second->population != b.second->population)
      return a.second->population > b.second->population;
    if (a.first != b.first) return a.first < b.first;
    return a.second->geoname_id < b.second->geoname_id;
  });
  std::vector<const City*> out;
  for (size_t i = 0; i < hits.size() && i < limit; ++i) out.push_back(hits[i].second);
  return out;
}

std::vector<uint32_t> ids(const std::vector<const City*>& cities) {
  std::vector<uint32_t> out;
  for (const City* c : cities) out.push_back(c->geoname_id);
  return out;
}

// Checks the result invariants: within the radius, at most `limit`, correctly ordered.
void check_ranked(const std::vector<const City*>& r, double lat, double lng, double radius_m,
                  size_t limit) {
  CHECK(r.size() <= limit);
  for (size_t i = 0; i < r.size(); ++i) {
    double d = places::haversine_m(lat, lng, r[i]->lat, r[i]->lng);
    CHECK(d <= radius_m);
    if (i == 0) continue;
    double prev = places::haversine_m(lat, lng, r[i - 1]->lat, r[i - 1]->lng);
    bool ordered = r[i - 1]->population > r[i]->population ||
                   (r[i - 1]->population == r[i]->population &&
                    (prev < d || (prev == d && r[i - 1]->geoname_id < r[i]->geoname_id)));
    CHECK(ordered);
  }
}

rapidjson::Document parse_json(const std::string& json) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(json.c_str(), json.size());
  REQUIRE_MESSAGE(!doc.HasParseError(), "unparsable JSON: " << json);
  return doc;
}

// Renders the answer for `cities` through a RapidJSON document and google_json: an independent
// construction of what OfflinePlaces must produce.
std::string reference_render(const std::vector<const City*>& cities) {
  using rapidjson::StringRef;
  using rapidjson::Value;
  const double h = 0.0013489802915;
  rapidjson::Document doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  Value results(rapidjson::kArrayType);
  for (const City* c : cities) {
    auto point = [&](double lat, double lng) {
      Value p(rapidjson::kObjectType);
      p.AddMember("lat", lat, a);
      p.AddMember("lng", lng, a);
      return p;
    };
    Value viewport(rapidjson::kObjectType);
    viewport.AddMember("northeast", point(c->lat + h, c->lng + h), a);
    viewport.AddMember("southwest", point(c->lat - h, c->lng - h), a);
    Value geometry(rapidjson::kObjectType);
    geometry.AddMember("location", point(c->lat, c->lng), a);
    geometry.AddMember("viewport", viewport, a);
    std::string id = "geonames:" + std::to_string(c->geoname_id);
    Value name(c->name.data(), static_cast<rapidjson::SizeType>(c->name.size()), a);
    Value r(rapidjson::kObjectType);
    // Deliberately unsorted: the writer sorts.
    r.AddMember("vicinity", Value(name, a), a);
    r.AddMember("types", Value(rapidjson::kArrayType).PushBack("locality", a).PushBack("political", a), a);
    r.AddMember("scope", "GOOGLE", a);
    r.AddMember("reference", Value(id.c_str(), a), a);
    r.AddMember("place_id", Value(id.c_str(), a), a);
    r.AddMember("name", name, a);
    r.AddMember("icon_mask_base_uri",
                "https://maps.gstatic.com/mapfiles/place_api/icons/v2/generic_pinlet", a);
    r.AddMember("icon_background_color", "#7B9EB0", a);
    r.AddMember("icon", "https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/geocode-71.png", a);
    r.AddMember("geometry", geometry, a);
    results.PushBack(r, a);
  }
  doc.AddMember("status", StringRef(cities.empty() ? "ZERO_RESULTS" : "OK"), a);
  doc.AddMember("results", results, a);
  doc.AddMember("html_attributions", Value(rapidjson::kArrayType), a);
  return places::google_json(doc);
}

const places::PlacesQuery kUcla{34.068930, -118.445127, 10000, 20};

}  // namespace

TEST_SUITE("gazetteer") {

TEST_CASE("haversine") {
  // One degree of arc along the equator or a meridian is R × π / 180.
  CHECK(places::haversine_m(0, 0, 0, 1) == doctest::Approx(111195.0802).epsilon(1e-9));
  CHECK(places::haversine_m(10, 20, 11, 20) == doctest::Approx(111195.0802).epsilon(1e-9));
  CHECK(places::haversine_m(0, 179.5, 0, -179.5) == doctest::Approx(111195.0802).epsilon(1e-9));
  CHECK(places::haversine_m(5, 5, 5, 5) == 0);
  CHECK(places::haversine_m(90, 0, -90, 0) == doctest::Approx(std::numbers::pi * places::kEarthRadiusM));
}

TEST_CASE("the real gazetteer loads with Albuquerque's record") {
  auto g = real_gazetteer();
  CHECK(g->size() == 135233);
  const City* abq = g->find(5454711);
  REQUIRE(abq != nullptr);
  CHECK(abq->name == "Albuquerque");
  CHECK(abq->country == "US");
  CHECK(abq->admin1 == "NM");
  CHECK(abq->population == 559121);
  CHECK(abq->lat == 3508449 / 1e5);
  CHECK(abq->lng == -10665114 / 1e5);
  // Every record is sane.
  size_t odd = 0;
  for (size_t i = 0; i < g->size(); ++i) {
    const City& c = g->city(i);
    bool sane = c.lat >= -90 && c.lat <= 90 && c.lng >= -180 && c.lng <= 180 &&
                !c.name.empty() && c.country.size() == 2 && c.geoname_id > 0;
    odd += !sane;
  }
  CHECK(odd == 0);
}

TEST_CASE("around UCLA: Los Angeles first, all within the radius, ranked") {
  auto g = real_gazetteer();
  auto r = g->nearby(34.068930, -118.445127, 25000, 20);
  REQUIRE(r.size() == 20);
  CHECK(r[0]->name == "Los Angeles");
  CHECK(r[0]->geoname_id == 5368361);
  check_ranked(r, 34.068930, -118.445127, 25000, 20);
  CHECK(ids(r) == ids(brute_nearby(*g, 34.068930, -118.445127, 25000, 20)));
  // 10 km leaves Los Angeles' centre (18.6 km away) out.
  auto r10 = g->nearby(34.068930, -118.445127, 10000, 5);
  REQUIRE(r10.size() == 5);
  CHECK(r10[0]->name == "Santa Monica");
  check_ranked(r10, 34.068930, -118.445127, 10000, 5);
  CHECK(g->nearby(34.068930, -118.445127, 25000, 1).at(0)->geoname_id == 5368361);
}

TEST_CASE("nothing in the middle of the Pacific; limit 0 and radius 0") {
  auto g = real_gazetteer();
  CHECK(g->nearby(0, -150, 50000, 20).empty());
  CHECK(g->nearby(34.068930, -118.445127, 25000, 0).empty());
  // Radius 0 finds a city only at its exact point.
  const City* abq = g->find(5454711);
  auto r = g->nearby(abq->lat, abq->lng, 0, 20);
  REQUIRE(r.size() == 1);
  CHECK(r[0] == abq);
}

TEST_CASE("the real data across the antimeridian and near the poles") {
  auto g = real_gazetteer();
  // Fiji: Labasa (179.365) and Levuka are west of the antimeridian, Tubou (-178.812) east of it.
  for (double lng : {179.95, 180.0, -180.0, -179.95}) {
    auto r = g->nearby(-17.5, lng, 160000, 20);
    CHECK(r.size() == 3);
    std::vector<uint32_t> got = ids(r);
    CHECK(std::count(got.begin(), got.end(), 2204582u) == 1);  // Labasa
    CHECK(std::count(got.begin(), got.end(), 4035863u) == 1);  // Tubou
    CHECK(got == ids(brute_nearby(*g, -17.5, lng, 160000, 20)));
  }
  // Chukotka: Anadyr and Beringovskiy (179.35) west, Egvekinot (-179.122) east.
  auto r = g->nearby(64.7, 180.0, 250000, 20);
  CHECK(ids(r) == ids(brute_nearby(*g, 64.7, 180.0, 250000, 20)));
  CHECK(ids(r) == std::vector<uint32_t>{2127202, 4031742, 2126710});
  // Poles: Longyearbyen is the northernmost city, McMurdo Station the southernmost.
  CHECK(g->nearby(90, 0, 50000, 20).empty());
  CHECK(ids(g->nearby(78.2, 15.6, 50000, 20)) == std::vector<uint32_t>{2729907});
  auto north = g->nearby(90, 0, 1400000, 20);
  CHECK(ids(north) == ids(brute_nearby(*g, 90, 0, 1400000, 20)));
  std::vector<uint32_t> north_ids = ids(north);
  CHECK(std::count(north_ids.begin(), north_ids.end(), 2729907u) == 1);
  // From the far side of the South Pole: 0.5° + 12.154° of arc to McMurdo, 1407 km.
  CHECK(g->nearby(-89.5, 0, 1400000, 20).empty());
  auto south = g->nearby(-89.5, 0, 1410000, 20);
  CHECK(ids(south) == std::vector<uint32_t>{6696480});
}

TEST_CASE("index agrees with brute force on random queries") {
  auto g = real_gazetteer();
  std::mt19937_64 rng(20240521);
  std::uniform_real_distribution<double> lat_d(-90, 90), lng_d(-180, 180), r_d(0, 50000);
  size_t nonempty = 0;
  for (int i = 0; i < 120; ++i) {
    double lat, lng;
    if (i % 2 == 0) {  // near a real city, so most answers are non-empty
      const City& c = g->city(rng() % g->size());
      lat = std::clamp(c.lat + (lat_d(rng) / 900), -90.0, 90.0);
      lng = c.lng + lng_d(rng) / 900;
      if (lng > 180) lng -= 360;
      if (lng < -180) lng += 360;
    } else {
      lat = lat_d(rng);
      lng = lng_d(rng);
    }
    double radius = i % 10 == 9 ? r_d(rng) * 20 : r_d(rng);  // some up to 1000 km
    size_t limit = 1 + rng() % 20;
    auto got = g->nearby(lat, lng, radius, limit);
    auto want = brute_nearby(*g, lat, lng, radius, limit);
    CHECK_MESSAGE(ids(got) == ids(want), "at " << lat << "," << lng << " r=" << radius);
    nonempty += !got.empty();
  }
  CHECK(nonempty > 40);
}

TEST_CASE("a full answer still takes a better city found later in the scan") {
  // The scan goes west to east and keeps the `limit` best so far; a city less populous than the
  // last of them is passed over unmeasured. Here the first cities scanned fill the answer and later
  // ones must displace them: equally populous but nearer (the tie goes to the distance), or more
  // populous; the less populous ones never rank.
  std::vector<Rec> recs;
  for (uint32_t i = 0; i < 10; ++i) {
    // Ids 1..10 from 0.10 degrees west of the query to 0.01 west, all of population 100; ids
    // 11..20 east of it, alternately of population 100 (nearer still) and 50.
    recs.push_back({1 + i, "West", 0.0, -0.10 + 0.01 * i, 100});
    recs.push_back({11 + i, "East", 0.0, 0.001 + 0.0001 * i, i % 2 ? 50u : 100u});
  }
  recs.push_back({21, "Big", 0.0, 0.2, 1000});
  auto g = synthetic(recs);
  CHECK(ids(g->nearby(0.0, 0.0, 50000, 3)) == std::vector<uint32_t>{21, 11, 13});
  CHECK(ids(g->nearby(0.0, 0.0, 50000, 8)) == std::vector<uint32_t>{21, 11, 13, 15, 17, 19, 10, 9});
  for (size_t limit = 1; limit <= 21; ++limit) {
    CHECK(ids(g->nearby(0.0, 0.0, 50000, limit)) == ids(brute_nearby(*g, 0.0, 0.0, 50000, limit)));
  }
}

TEST_CASE("synthetic cities at the antimeridian and the poles") {
  auto g = synthetic({
      {1, "East", -16.8, 179.99, 100},
      {2, "West", -16.8, -179.99, 200},
      {3, "Dateline", -16.8, 180.0, 50},
      {4, "NorthPole", 90.0, 0.0, 10},
      {5, "NearPole", 89.99, 123.0, 10},
      {6, "FarSide", 89.99, -57.0, 10},
      {7, "SouthPole", -90.0, 45.0, 0},
      {8, "Tie", 10.0, 10.0, 7},
      {9, "Tie", 10.0, 10.0, 7},
  });
  REQUIRE(g->size() == 9);
  // Across the antimeridian from either side: ranked by population.
  for (double lng : {179.995, -179.995, 180.0, -180.0}) {
    CHECK(ids(g->nearby(-16.8, lng, 5000, 20)) == std::vector<uint32_t>{2, 1, 3});
  }
  // Near the North Pole every longitude counts; ties in population go to the nearer city.
  CHECK(ids(g->nearby(89.995, 123.0, 5000, 20)) == std::vector<uint32_t>{5, 4, 6});
  CHECK(ids(g->nearby(90.0, -170.0, 1200, 20)) == std::vector<uint32_t>{4, 5, 6});
  CHECK(ids(g->nearby(-89.999, -135.0, 200, 20)) == std::vector<uint32_t>{7});
  // Equal population and distance: geoname id decides.
  CHECK(ids(g->nearby(10.0, 10.0, 1, 20)) == std::vector<uint32_t>{8, 9});
  CHECK(ids(g->nearby(10.0, 10.0, 1, 1)) == std::vector<uint32_t>{8});
  for (double lat : {-90.0, -89.99, -16.8, 10.0, 89.99, 90.0}) {
    for (double lng : {-180.0, -179.99, 0.0, 123.0, 179.99, 180.0}) {
      CHECK(ids(g->nearby(lat, lng, 3e6, 20)) == ids(brute_nearby(*g, lat, lng, 3e6, 20)));
    }
  }
}

TEST_CASE("bad files give clear errors") {
  std::string error;
  SUBCASE("missing") {
    CHECK(Gazetteer::load("/nonexistent/cities.pbf", &error) == nullptr);
    CHECK(error.find("/nonexistent/cities.pbf") != std::string::npos);
    CHECK(error.find("missing") != std::string::npos);
  }
  SUBCASE("truncated real file") {
    std::string bytes = encode({{1, "A", 1, 1, 5}, {2, "B", 2, 2, 6}});
    char path[] = "/tmp/herd-gazetteer-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    std::FILE* f = fdopen(fd, "wb");
    std::fwrite(bytes.data(), 1, bytes.size() - 3, f);
    std::fclose(f);
    CHECK(Gazetteer::load(path, &error) == nullptr);
    std::remove(path);
    CHECK(error.find(path) != std::string::npos);
    CHECK(error.find("truncated") != std::string::npos);
  }
  SUBCASE("length varint cut off") {
    std::string bytes = encode({{1, "A", 1, 1, 5}});
    bytes += '\x80';
    CHECK(Gazetteer::parse(bytes, "f.pbf", &error) == nullptr);
    CHECK(error.find("f.pbf") != std::string::npos);
    CHECK(error.find("truncated") != std::string::npos);
  }
  SUBCASE("corrupt: bad wire type inside a record") {
    std::string m = "\x08\x02\x0f";  // id 1, then a tag with wire type 7
    std::string bytes = std::string(1, static_cast<char>(m.size())) + m;
    CHECK(Gazetteer::parse(bytes, "f.pbf", &error) == nullptr);
    CHECK(error.find("corrupt") != std::string::npos);
  }
  SUBCASE("corrupt: string overruns its record") {
    std::string m = "\x08\x02\x12\x09" "abc";  // name claims 9 bytes, has 3
    std::string bytes = std::string(1, static_cast<char>(m.size())) + m;
    CHECK(Gazetteer::parse(bytes, "f.pbf", &error) == nullptr);
    CHECK(error.find("corrupt") != std::string::npos);
  }
  SUBCASE("corrupt: coordinates out of range") {
    // Each copy of the file adds its deltas again: the second one climbs past 90°.
    std::string bytes = encode({{1, "A", 89, 0}});
    auto g = Gazetteer::parse(bytes + bytes, "f.pbf", &error);
    CHECK(g == nullptr);
    CHECK(error.find("out of range") != std::string::npos);
  }
  SUBCASE("corrupt: a delta that would overflow the running coordinate") {
    // The review's crafted file: a zigzag delta of -2^63 after a negative longitude made `acc += delta`
    // overflow (undefined behaviour) before the range check could see it.
    std::string m = "\x08\x02";
    m += "\x50";                                               // field 10 (lng delta), varint
    m += "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";     // zigzag(-2^63)
    m += "\x58\x02";                                          // lat delta 1
    std::string bytes = std::string(1, static_cast<char>(m.size())) + m;
    bytes = encode({{1, "A", 0, -170}}) + bytes;
    CHECK(Gazetteer::parse(bytes, "f.pbf", &error) == nullptr);
    CHECK(error.find("delta out of range") != std::string::npos);
  }
  SUBCASE("corrupt: a varint of more than 64 bits") {
    std::string m = "\x08";
    m += "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02";  // bit 64 set
    std::string bytes = std::string(1, static_cast<char>(m.size())) + m;
    CHECK(Gazetteer::parse(bytes, "f.pbf", &error) == nullptr);
    CHECK(error.find("corrupt") != std::string::npos);
    std::string length = "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02";
    CHECK(Gazetteer::parse(length, "f.pbf", &error) == nullptr);
    CHECK(error.find("bad length") != std::string::npos);
  }
  SUBCASE("not a regular file: a directory, /dev/zero, a pipe") {
    CHECK(Gazetteer::load("/tmp", &error) == nullptr);
    CHECK(error.find("/tmp") != std::string::npos);
    CHECK(error.find("not a regular file (a directory)") != std::string::npos);
    CHECK(Gazetteer::load("/dev/zero", &error) == nullptr);
    CHECK(error.find("not a regular file (a character device)") != std::string::npos);
    char dir[] = "/tmp/herd-fifo-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    std::string fifo = std::string(dir) + "/cities.pbf";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    CHECK(Gazetteer::load(fifo, &error) == nullptr);  // and does not wait for a writer
    CHECK(error.find("not a regular file (a pipe)") != std::string::npos);
    std::remove(fifo.c_str());
    rmdir(dir);
  }
  SUBCASE("too large (a sparse file: nothing is written)") {
    char path[] = "/tmp/herd-gazetteer-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(ftruncate(fd, static_cast<off_t>(Gazetteer::kMaxFileBytes) + 1) == 0);
    close(fd);
    CHECK(Gazetteer::load(path, &error) == nullptr);
    std::remove(path);
    CHECK(error.find("too large") != std::string::npos);
  }
  SUBCASE("a text file") {
    CHECK(Gazetteer::parse("hello, world\n", "f.pbf", &error) == nullptr);
    CHECK(error.find("f.pbf") != std::string::npos);
  }
  SUBCASE("empty") {
    CHECK(Gazetteer::parse("", "f.pbf", &error) == nullptr);
    CHECK(error.find("empty") != std::string::npos);
  }
  CHECK(Gazetteer::parse("", "f.pbf", nullptr) == nullptr);  // error is optional
}

TEST_CASE("the decoder's limits are inclusive: the largest id and population, a pole-to-pole step") {
  // geonameid and population are uint32 (gazetteer.h): 2^32 - 1 is in range, 2^32 is not. A delta
  // may step from one end of a coordinate's range to the other (-90 to 90, -180 to 180).
  std::string error;
  auto g = Gazetteer::parse(encode({{0xffffffffu, "Max", -90, -180, 0xffffffffu}, {2, "N", 90, 180}}), "f.pbf", &error);
  REQUIRE_MESSAGE(g != nullptr, error);
  REQUIRE(g->size() == 2);
  CHECK(g->city(0).geoname_id == 0xffffffffu);
  CHECK(g->city(0).population == 0xffffffffu);
  CHECK(g->city(1).lat == 90);
  CHECK(g->city(1).lng == 180);
  for (int field : {1, 9}) {
    CAPTURE(field);
    std::string m = "\x08\x02";
    put_varint(m, static_cast<uint64_t>(field) << 3);
    put_varint(m, field == 1 ? zigzag(int64_t{1} << 32) : uint64_t{1} << 32);
    std::string bytes = std::string(1, static_cast<char>(m.size())) + m;
    CHECK(Gazetteer::parse(bytes, "f.pbf", &error) == nullptr);
    CHECK(error.find("out of range") != std::string::npos);
  }
}

TEST_CASE("fields of a known number with the wrong wire type are refused, the last string and number too") {
  // Fields 2..8 are strings and 1, 9, 10, 11 varints: admin1 (8) as a varint and the latitude
  // delta (11) as a fixed32 are corrupt records, not fields to skip.
  std::string error;
  std::string m = "\x08\x02" "\x40\x01";  // id 1, field 8 as a varint
  CHECK(Gazetteer::parse(std::string(1, static_cast<char>(m.size())) + m, "f.pbf", &error) == nullptr);
  CHECK(error.find("field 8 is not a string") != std::string::npos);
  m = std::string("\x08\x02" "\x5d", 3) + std::string(4, '\0');  // id 1, field 11 as a fixed32
  CHECK(Gazetteer::parse(std::string(1, static_cast<char>(m.size())) + m, "f.pbf", &error) == nullptr);
  CHECK(error.find("field 11 has the wrong wire type") != std::string::npos);
  // An unknown field past 11 with a fixed wire type is skipped.
  m = std::string("\x08\x02" "\x65", 3) + std::string(4, '\0');  // field 12, fixed32
  CHECK_MESSAGE(Gazetteer::parse(std::string(1, static_cast<char>(m.size())) + m, "f.pbf", &error) != nullptr, error);
}

}  // TEST_SUITE

TEST_SUITE("offline places") {

TEST_CASE("the UCLA answer: shape, layout, ranking") {
  places::OfflinePlaces provider(real_gazetteer());
  std::string json = provider.render(kUcla);
  CHECK(json.find("\n\n") == std::string::npos);
  CHECK(json.back() == '}');
  rapidjson::Document doc = parse_json(json);
  REQUIRE(doc.IsObject());
  CHECK(std::string(doc["status"].GetString()) == "OK");
  CHECK(doc["html_attributions"].IsArray());
  CHECK(doc["html_attributions"].Empty());
  const auto& results = doc["results"];
  auto want = real_gazetteer()->nearby(kUcla.lat, kUcla.lng, kUcla.radius_m, 20);
  REQUIRE(results.Size() == want.size());
  REQUIRE(results.Size() >= 5);
  for (rapidjson::SizeType i = 0; i < results.Size(); ++i) {
    const auto& r = results[i];
    const City& c = *want[i];
    CHECK(r.MemberCount() == 10);
    CHECK(std::string(r["name"].GetString()) == c.name);
    CHECK(std::string(r["vicinity"].GetString()) == c.name);
    CHECK(std::string(r["place_id"].GetString()) == "geonames:" + std::to_string(c.geoname_id));
    CHECK(std::string(r["reference"].GetString()) == r["place_id"].GetString());
    CHECK(r["geometry"]["location"]["lat"].GetDouble() == c.lat);
    CHECK(r["geometry"]["location"]["lng"].GetDouble() == c.lng);
    double lat = r["geometry"]["location"]["lat"].GetDouble();
    double lng = r["geometry"]["location"]["lng"].GetDouble();
    CHECK(places::haversine_m(kUcla.lat, kUcla.lng, lat, lng) <= kUcla.radius_m);
  }
  // Byte for byte what a RapidJSON document rendered by google_json gives, and stable when
  // re-rendered.
  CHECK(json == reference_render(want));
  CHECK(places::google_json(doc) == json);
  // The layout of one result, literally.
  CHECK(json.find("      {\n"
                  "         \"geometry\" : {\n"
                  "            \"location\" : {\n"
                  "               \"lat\" : 34.01945,\n"
                  "               \"lng\" : -118.49119\n"
                  "            },\n"
                  "            \"viewport\" : {\n"
                  "               \"northeast\" : {\n"
                  "                  \"lat\" : 34.0207989802915,\n"
                  "                  \"lng\" : -118.4898410197085\n"
                  "               },\n"
                  "               \"southwest\" : {\n"
                  "                  \"lat\" : 34.0181010197085,\n"
                  "                  \"lng\" : -118.4925389802915\n"
                  "               }\n"
                  "            }\n"
                  "         },\n"
                  "         \"icon\" : \"https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/geocode-71.png\",\n"
                  "         \"icon_background_color\" : \"#7B9EB0\",\n"
                  "         \"icon_mask_base_uri\" : \"https://maps.gstatic.com/mapfiles/place_api/icons/v2/generic_pinlet\",\n"
                  "         \"name\" : \"Santa Monica\",\n"
                  "         \"place_id\" : \"geonames:5393212\",\n"
                  "         \"reference\" : \"geonames:5393212\",\n"
                  "         \"scope\" : \"GOOGLE\",\n"
                  "         \"types\" : [ \"locality\", \"political\" ],\n"
                  "         \"vicinity\" : \"Santa Monica\"\n"
                  "      }") != std::string::npos);
  CHECK(json.ends_with("\n      }\n   ],\n   \"status\" : \"OK\"\n}"));
  CHECK(json.starts_with("{\n   \"html_attributions\" : [],\n   \"results\" : [\n      {\n"));
}

TEST_CASE("bound limits the results") {
  places::OfflinePlaces provider(real_gazetteer());
  for (int bound : {1, 3, 20}) {
    places::PlacesQuery q{34.068930, -118.445127, 50000, bound};
    rapidjson::Document doc = parse_json(provider.render(q));
    CHECK(doc["results"].Size() == static_cast<rapidjson::SizeType>(bound));
    CHECK(std::string(doc["results"][0]["name"].GetString()) == "Los Angeles");
  }
}

TEST_CASE("ZERO_RESULTS in the middle of the Pacific") {
  places::OfflinePlaces provider(real_gazetteer());
  std::string want =
      "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}";
  CHECK(provider.render({0, -150, 50000, 20}) == want);
  CHECK(provider.render({34.068930, -118.445127, 50000, 0}) == want);
  CHECK(reference_render({}) == want);
}

TEST_CASE("names are escaped; the answer is the reference rendering everywhere") {
  auto g = synthetic({{42, "Q\"uote <b> & /\\ S\xc3\xa3o\t", 1.5, 2.5, 3},
                      {43, "Round", 1.5, 2.5 + 1e-5, 0},
                      {44, "Integral", 2.0, 3.0, 1}});
  places::OfflinePlaces provider(std::shared_ptr<const Gazetteer>(std::move(g)));
  std::string json = provider.render({1.5, 2.5, 200000, 20});
  CHECK(json.find("\"name\" : \"Q\\\"uote \\u003cb\\u003e & /\\\\ S\xc3\xa3o\\t\"") !=
        std::string::npos);
  CHECK(json.find("\"lat\" : 2,\n") != std::string::npos);  // integral double, no ".0"
  rapidjson::Document doc = parse_json(json);
  CHECK(doc["results"].Size() == 3);
  CHECK(places::google_json(doc) == json);

  auto real = real_gazetteer();
  places::OfflinePlaces offline(real);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 50; ++i) {
    const City& c = real->city(rng() % real->size());
    places::PlacesQuery q{c.lat, c.lng, 1000.0 + static_cast<double>(rng() % 49000),
                          1 + static_cast<int>(rng() % 20)};
    std::string answer = offline.render(q);
    CHECK(answer.find("\n\n") == std::string::npos);
    CHECK(answer == reference_render(real->nearby(q.lat, q.lng, q.radius_m, q.bound)));
  }
}

// A random WHATSAT-like query: near a real city (most answers non-empty), uniform on the globe, or
// at a pole, the antimeridian or the edge of the coordinate ranges; a radius up to 50 km, some
// exactly the distance to a city (the boundary is inclusive); a bound 0..20.
places::PlacesQuery random_query(const Gazetteer& g, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unit(0, 1);
  const double edges_lat[] = {-90.0, -89.9999, 89.9999, 90.0, 0.0};
  const double edges_lng[] = {-180.0, -179.9999, 179.9999, 180.0, 0.0};
  double lat, lng;
  switch (rng() % 4) {
    case 0:
    case 1: {
      const City& c = g.city(rng() % g.size());
      lat = std::clamp(c.lat + (unit(rng) - 0.5) * 0.2, -90.0, 90.0);
      lng = c.lng + (unit(rng) - 0.5) * 0.2;
      if (lng > 180) lng -= 360;
      if (lng < -180) lng += 360;
      break;
    }
    case 2:
      lat = -90 + 180 * unit(rng);
      lng = -180 + 360 * unit(rng);
      break;
    default:
      lat = rng() % 2 ? edges_lat[rng() % 5] : -90 + 180 * unit(rng);
      lng = rng() % 2 ? edges_lng[rng() % 5] : -180 + 360 * unit(rng);
      break;
  }
  double radius = rng() % 8 == 0 ? 0.001 + unit(rng) : 50000 * unit(rng);
  if (rng() % 8 == 0) {  // exactly the distance to some city: on the boundary
    const City& c = g.city(rng() % g.size());
    double d = places::haversine_m(lat, lng, c.lat, c.lng);
    if (d <= 50000) radius = d;
  }
  return {lat, lng, radius, static_cast<int>(rng() % 21)};
}

TEST_CASE("the pre-rendered answer is byte for byte the straightforward one on random queries") {
  auto real = real_gazetteer();
  places::OfflinePlaces offline(real);
  std::mt19937_64 rng(20261126);
  size_t nonempty = 0, full = 0;
  std::string out;
  for (int i = 0; i < 800; ++i) {
    places::PlacesQuery q = random_query(*real, rng);
    size_t limit = q.bound > 0 ? static_cast<size_t>(q.bound) : 0;
    auto cities = brute_nearby(*real, q.lat, q.lng, q.radius_m, limit);
    std::string want = places::OfflinePlaces::render_cities(cities);
    // answer_now appends after what the output already holds, and leaves it alone.
    out.assign("AT prefix\n");
    REQUIRE(offline.answer_now(q, out));
    REQUIRE_MESSAGE(out.substr(10) == want, "at " << q.lat << "," << q.lng << " r=" << q.radius_m
                                                 << " bound " << q.bound);
    CHECK(out.compare(0, 10, "AT prefix\n") == 0);
    if (i % 10 == 0) CHECK(want == reference_render(cities));  // the oracle itself, independently
    nonempty += !cities.empty();
    full += q.bound > 0 && cities.size() == limit;
  }
  CHECK(nonempty > 250);
  CHECK(full > 80);
}

TEST_CASE("the pre-rendered answer: escaped names, poles, antimeridian, numbers with exponents") {
  auto g = synthetic({{1, "Q\"uote <b> & /\\ S\xc3\xa3o\t\x01", 0.00135, 0.00134, 9},
                      {2, "Tiny", 0.0, 0.0, 8},
                      {3, "Neg", -0.00001, -0.00135, 7},
                      {4, "NorthPole", 90.0, 180.0, 6},
                      {5, "SouthPole", -90.0, -180.0, 5},
                      {6, "Dateline", -16.8, 180.0, 4},
                      {7, "", -16.8, -179.99999, 3},
                      {8, "Big", -89.99999, 179.99999, 2}});
  std::shared_ptr<const Gazetteer> shared(std::move(g));
  places::OfflinePlaces offline(shared);
  std::string all = offline.render({0, 0, 2e7, 20});
  CHECK(all.find("e-06") != std::string::npos);  // 0.00135 - 0.0013489802915 = 1.0197085e-06
  CHECK(all.find("\\u0001") != std::string::npos);
  for (double lat : {-90.0, -16.8, 0.0, 0.00135, 90.0}) {
    for (double lng : {-180.0, -179.99999, 0.0, 180.0}) {
      for (int bound : {0, 1, 3, 20}) {
        for (double r : {1.0, 5000.0, 50000.0, 2e7}) {
          places::PlacesQuery q{lat, lng, r, bound};
          std::string got;
          REQUIRE(offline.answer_now(q, got));
          auto want = places::OfflinePlaces::render_cities(
              brute_nearby(*shared, lat, lng, r, bound > 0 ? static_cast<size_t>(bound) : 0));
          CHECK_MESSAGE(got == want, lat << "," << lng << " r=" << r << " bound " << bound);
        }
      }
    }
  }
}

TEST_CASE("nearby() answers synchronously, exactly once") {
  places::OfflinePlaces provider(real_gazetteer());
  reactor::EventLoop loop;  // not needed by the offline provider, and not running
  int calls = 0;
  std::string got;
  provider.nearby(loop, kUcla, [&](std::string json) {
    ++calls;
    got = std::move(json);
  });
  CHECK(calls == 1);
  CHECK(got == provider.render(kUcla));
}

}  // TEST_SUITE

TEST_SUITE("offline places concurrency") {

TEST_CASE("one OfflinePlaces shared by many threads") {
  auto provider = std::make_shared<places::OfflinePlaces>(real_gazetteer());
  std::vector<places::PlacesQuery> queries = {
      kUcla, {0, -150, 50000, 20}, {-17.8, 180.0, 50000, 20}, {48.8566, 2.3522, 30000, 10}};
  std::vector<std::string> serial;
  for (const auto& q : queries) serial.push_back(provider->render(q));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        size_t k = static_cast<size_t>(i + t) % queries.size();
        if (provider->render(queries[k]) != serial[k]) ++mismatches[static_cast<size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

}  // TEST_SUITE
