// Unit tests for the google providers: the legacy and New request shapes, the re-layout of upstream
// JSON (byte for byte against Google's example response, whatever layout it arrives in), the
// New-API translation and error envelopes, and GooglePlaces against a scripted upstream: coalescing,
// max_inflight and its bounded queue, retries (and where there are none), timeouts, the log without
// the key. Suite "places google concurrency": one provider driven from two loops (ThreadSanitizer).
#include <doctest/doctest.h>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string_view>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/writer.h>
#include <rapidjson/prettywriter.h>

#include "http_test_server.h"
#include "loop_runner.h"
#include "places/google_json.h"
#include "places/google_places.h"
#include "places/json_reader.h"
#include "places/legacy_api.h"
#include "places/new_api.h"
#include "places/retry_policy.h"
#include "places/upstream_api.h"
#include "reactor/event_loop.h"
#include "reactor/loop_group.h"

using namespace std::chrono_literals;
using reactor::EventLoop;
using testing_http::Reply;
using testing_http::TestServer;

namespace {

constexpr const char* kKey = "sekrit/key+42";
const places::PlacesQuery kUcla{34.068930, -118.445127, 10000, 5};

std::string fixture() {
  std::ifstream in("test/fixtures/google-nearbysearch-example.json", std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// `json` re-written compactly (rapidjson's Writer) or indented by 2 (PrettyWriter), as other
// upstream layouts would send it.
std::string relayout(const std::string& json, bool pretty) {
  rapidjson::Document d;
  REQUIRE_FALSE(places::read_json(json, &d).IsError());
  rapidjson::StringBuffer buf;
  if (pretty) {
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
    w.SetIndent(' ', 2);
    d.Accept(w);
  } else {
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    d.Accept(w);
  }
  return buf.GetString();
}

http::Response response(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace

TEST_SUITE("places google") {

TEST_CASE("legacy request: location, radius in metres, key encoded") {
  places::LegacyApi api(kKey);
  http::Request r = api.request(kUcla);
  CHECK(r.method == "GET");
  CHECK(r.target == "/maps/api/place/nearbysearch/json?location=34.06893,-118.445127&radius=10000&key=sekrit%2Fkey%2B42");
  CHECK(r.body.empty());
  places::PlacesQuery odd{-33.8670522, 151.1957362, 1500.5, 20};
  CHECK(api.request(odd).target == "/maps/api/place/nearbysearch/json?location=-33.8670522,151.1957362&radius=1500.5&key=sekrit%2Fkey%2B42");
}

TEST_CASE("New request: POST, key and field mask headers, bound and circle in the body") {
  places::NewApi api(kKey);
  http::Request r = api.request(kUcla);
  CHECK(r.method == "POST");
  CHECK(r.target == "/v1/places:searchNearby");
  CHECK(r.body == "{\"maxResultCount\":5,\"locationRestriction\":{\"circle\":{\"center\":{\"latitude\":34.06893,"
                  "\"longitude\":-118.445127},\"radius\":10000}}}");
  rapidjson::Document d;
  d.Parse(r.body.data(), r.body.size());
  CHECK_FALSE(d.HasParseError());
  auto header = [&](const char* name) {
    for (auto& h : r.headers) {
      if (h.name == name) return h.value;
    }
    return std::string("(none)");
  };
  CHECK(header("X-Goog-Api-Key") == kKey);
  CHECK(header("Content-Type") == "application/json");
  CHECK(header("X-Goog-FieldMask") == std::string(places::NewApi::kFieldMask));
}

TEST_CASE("legacy replies are re-emitted in Google's byte layout whatever layout they came in") {
  std::string file = fixture();
  std::string expected = file.substr(0, file.size() - 1);  // the fixture ends in Google's newline
  places::LegacyApi api(kKey);
  for (const std::string& body : {file, relayout(file, false), relayout(file, true)}) {
    places::PlacesAnswer a = api.interpret(response(200, body));
    CHECK(a.status == "OK");
    CHECK_FALSE(a.retryable);
    CHECK(places::render_answer(a, 20) == expected);
    CHECK(places::render_answer(a, 2) == expected);
    // Cut to one result: the first result and every other member unchanged.
    std::string one = places::render_answer(a, 1);
    rapidjson::Document d;
    d.Parse(one.data(), one.size());
    REQUIRE(d["results"].Size() == 1);
    CHECK(std::string(d["results"][0]["name"].GetString()) == "Cruise Bar");
    CHECK(one.find("\n\n") == std::string::npos);
    size_t second = expected.find("      },\n      {\n");
    REQUIRE(second != std::string::npos);
    CHECK(one.substr(0, second) == expected.substr(0, second));
    CHECK(one.ends_with("\n      }\n   ],\n   \"status\" : \"OK\"\n}"));
  }
}

TEST_CASE("legacy statuses are passed on with their message; retryable only where Google retries") {
  places::LegacyApi api(kKey);
  struct Case {
    int http;
    const char* body;
    const char* status;
    bool retry;
  } cases[] = {
      {200, R"({"html_attributions":[],"results":[],"status":"ZERO_RESULTS"})", "ZERO_RESULTS", false},
      {200, R"({"error_message":"The provided API key is invalid.","html_attributions":[],"results":[],"status":"REQUEST_DENIED"})",
       "REQUEST_DENIED", false},
      {400, R"({"error_message":"Invalid request. Missing the 'location' parameter.","html_attributions":[],"results":[],"status":"INVALID_REQUEST"})",
       "INVALID_REQUEST", false},
      {200, R"({"error_message":"You have exceeded your rate-limit for this API.","html_attributions":[],"results":[],"status":"OVER_QUERY_LIMIT"})",
       "OVER_QUERY_LIMIT", true},
      {200, R"({"error_message":"You have exceeded your daily request quota for this API.","html_attributions":[],"results":[],"status":"OVER_QUERY_LIMIT"})",
       "OVER_QUERY_LIMIT", false},
      {200, R"({"html_attributions":[],"results":[],"status":"UNKNOWN_ERROR"})", "UNKNOWN_ERROR", false},
      {503, R"({"html_attributions":[],"results":[],"status":"UNKNOWN_ERROR"})", "UNKNOWN_ERROR", true},
      {503, "<html>Service Unavailable</html>", "UNKNOWN_ERROR", true},
      {500, "", "UNKNOWN_ERROR", true},
      {504, "oops", "UNKNOWN_ERROR", true},
      {502, "<html>Bad Gateway</html>", "UNKNOWN_ERROR", false},
      {200, "{\"results\": [", "UNKNOWN_ERROR", false},
      {200, "[1,2]", "UNKNOWN_ERROR", false},
      {200, R"({"results":[]})", "UNKNOWN_ERROR", false},
      {403, "<html>Forbidden</html>", "REQUEST_DENIED", false},
      {429, "Too Many Requests", "OVER_QUERY_LIMIT", true},
      // An HTTP 429 is retried for the rate limit its body names, not for the daily quota.
      {429, R"({"error_message":"You have exceeded your rate-limit for this API.","html_attributions":[],"results":[],"status":"OVER_QUERY_LIMIT"})",
       "OVER_QUERY_LIMIT", true},
      {429, R"({"error_message":"You have exceeded your daily request quota for this API.","html_attributions":[],"results":[],"status":"OVER_QUERY_LIMIT"})",
       "OVER_QUERY_LIMIT", false},
      {200, R"({"html_attributions":[],"results":[],"status":"OVER_QUERY_LIMIT"})", "OVER_QUERY_LIMIT", true},
  };
  for (const Case& c : cases) {
    CAPTURE(c.body);
    places::PlacesAnswer a = api.interpret(response(c.http, c.body));
    CHECK(a.status == c.status);
    CHECK(a.retryable == c.retry);
    std::string json = places::render_answer(a, 5);
    rapidjson::Document d;
    d.Parse(json.data(), json.size());
    REQUIRE_FALSE(d.HasParseError());
    CHECK(d["html_attributions"].IsArray());
    CHECK(d["results"].IsArray());
    CHECK(std::string(d["status"].GetString()) == c.status);
    if (a.status != "OK" && a.status != "ZERO_RESULTS") {
      // A failure always says what went wrong: Google's message, or ours when it sent none.
      REQUIRE(d.HasMember("error_message"));
      REQUIRE(d["error_message"].IsString());
      const std::string said = d["error_message"].GetString();
      if (std::string(c.body).find("error_message") != std::string::npos) {
        rapidjson::Document up;
        up.Parse(c.body, std::strlen(c.body));
        CHECK(said == up["error_message"].GetString());
      } else {
        CHECK(said.find("the places upstream answered") == 0);
      }
    }
  }
  // The exact reply for a body that is not JSON.
  CHECK(places::render_answer(api.interpret(response(200, "<html>")), 5) ==
        "{\n   \"error_message\" : \"the places upstream answered HTTP 200 with a body that is not JSON\",\n"
        "   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}");
  // An upstream message that repeats the key never shows it.
  places::PlacesAnswer echo = api.interpret(response(
      200, R"({"error_message":"key sekrit/key+42 or sekrit%2Fkey%2B42 refused","results":[],"status":"REQUEST_DENIED"})"));
  CHECK(places::render_answer(echo, 5).find("sekrit") == std::string::npos);
}

TEST_CASE("New places are translated into the legacy result shape") {
  const char* body = R"({
  "places": [
    {
      "id": "ChIJi6C1MxquEmsR9-c-3O48ykI",
      "types": ["bar", "restaurant", "food", "point_of_interest", "establishment"],
      "formattedAddress": "Level 1, 2 and 3, Overseas Passenger Terminal, Circular Quay W, The Rocks",
      "plusCode": {"globalCode": "4RRH46R6+G2", "compoundCode": "46R6+G2 The Rocks, New South Wales"},
      "location": {"latitude": -33.8587323, "longitude": 151.2100055},
      "viewport": {"low": {"latitude": -33.86009812989271, "longitude": 151.2085439701072},
                   "high": {"latitude": -33.85739847010727, "longitude": 151.2112436298927}},
      "rating": 4,
      "userRatingCount": 1269,
      "priceLevel": "PRICE_LEVEL_MODERATE",
      "businessStatus": "OPERATIONAL",
      "currentOpeningHours": {"openNow": false},
      "iconMaskBaseUri": "https://maps.gstatic.com/mapfiles/place_api/icons/v2/bar_pinlet",
      "iconBackgroundColor": "#FF9E67",
      "displayName": {"text": "Cruise Bar", "languageCode": "en"}
    },
    {
      "id": "geonames:5368361",
      "displayName": {"text": "Los Angeles"},
      "location": {"latitude": 34.05223, "longitude": -118.24368},
      "types": ["locality", "political"]
    }
  ]
}
)";
  places::NewApi api(kKey);
  places::PlacesAnswer a = api.interpret(response(200, body));
  CHECK(a.status == "OK");
  CHECK_FALSE(a.retryable);
  std::string json = places::render_answer(a, 20);
  CHECK(json ==
        "{\n"
        "   \"html_attributions\" : [],\n"
        "   \"results\" : [\n"
        "      {\n"
        "         \"business_status\" : \"OPERATIONAL\",\n"
        "         \"geometry\" : {\n"
        "            \"location\" : {\n"
        "               \"lat\" : -33.8587323,\n"
        "               \"lng\" : 151.2100055\n"
        "            },\n"
        "            \"viewport\" : {\n"
        "               \"northeast\" : {\n"
        "                  \"lat\" : -33.85739847010727,\n"
        "                  \"lng\" : 151.2112436298927\n"
        "               },\n"
        "               \"southwest\" : {\n"
        "                  \"lat\" : -33.86009812989271,\n"
        "                  \"lng\" : 151.2085439701072\n"
        "               }\n"
        "            }\n"
        "         },\n"
        "         \"icon_background_color\" : \"#FF9E67\",\n"
        "         \"icon_mask_base_uri\" : \"https://maps.gstatic.com/mapfiles/place_api/icons/v2/bar_pinlet\",\n"
        "         \"name\" : \"Cruise Bar\",\n"
        "         \"opening_hours\" : {\n"
        "            \"open_now\" : false\n"
        "         },\n"
        "         \"place_id\" : \"ChIJi6C1MxquEmsR9-c-3O48ykI\",\n"
        "         \"plus_code\" : {\n"
        "            \"compound_code\" : \"46R6+G2 The Rocks, New South Wales\",\n"
        "            \"global_code\" : \"4RRH46R6+G2\"\n"
        "         },\n"
        "         \"price_level\" : 2,\n"
        "         \"rating\" : 4,\n"
        "         \"reference\" : \"ChIJi6C1MxquEmsR9-c-3O48ykI\",\n"
        "         \"scope\" : \"GOOGLE\",\n"
        "         \"types\" : [ \"bar\", \"restaurant\", \"food\", \"point_of_interest\", \"establishment\" ],\n"
        "         \"user_ratings_total\" : 1269,\n"
        "         \"vicinity\" : \"Level 1, 2 and 3, Overseas Passenger Terminal, Circular Quay W, The Rocks\"\n"
        "      },\n"
        "      {\n"
        "         \"geometry\" : {\n"
        "            \"location\" : {\n"
        "               \"lat\" : 34.05223,\n"
        "               \"lng\" : -118.24368\n"
        "            },\n"
        "            \"viewport\" : {\n"
        "               \"northeast\" : {\n"
        "                  \"lat\" : 34.0535789802915,\n"
        "                  \"lng\" : -118.2423310197085\n"
        "               },\n"
        "               \"southwest\" : {\n"
        "                  \"lat\" : 34.0508810197085,\n"
        "                  \"lng\" : -118.2450289802915\n"
        "               }\n"
        "            }\n"
        "         },\n"
        "         \"name\" : \"Los Angeles\",\n"
        "         \"place_id\" : \"geonames:5368361\",\n"
        "         \"reference\" : \"geonames:5368361\",\n"
        "         \"scope\" : \"GOOGLE\",\n"
        "         \"types\" : [ \"locality\", \"political\" ]\n"
        "      }\n"
        "   ],\n"
        "   \"status\" : \"OK\"\n"
        "}");
  // Cut to the bound like any answer.
  rapidjson::Document d;
  const std::string first = places::render_answer(a, 1);
  d.Parse(first.data(), first.size());
  CHECK(d["results"].Size() == 1);
  // Nothing found: {} or an empty list.
  for (const char* empty : {"{}", "{\"places\": []}", "{}\n"}) {
    places::PlacesAnswer z = api.interpret(response(200, empty));
    CHECK(z.status == "ZERO_RESULTS");
    CHECK(places::render_answer(z, 5) ==
          "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}");
  }
}

TEST_CASE("New error envelopes become a legacy status and error_message") {
  places::NewApi api(kKey);
  struct Case {
    int http;
    const char* body;
    const char* status;
    const char* message;
    bool retry;
  } cases[] = {
      {400, R"({"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}})",
       "INVALID_REQUEST", "API key not valid. Please pass a valid API key.", false},
      {403, R"({"error":{"code":403,"message":"The request is missing a valid API key.","status":"PERMISSION_DENIED"}})",
       "REQUEST_DENIED", "The request is missing a valid API key.", false},
      {429, R"({"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED"}})", "OVER_QUERY_LIMIT",
       "Quota exceeded.", true},
      {500, R"({"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL"}})", "UNKNOWN_ERROR",
       "Internal error encountered.", true},
      {503, R"({"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}})",
       "UNKNOWN_ERROR", "The service is currently unavailable.", true},
      {504, R"({"error":{"code":504,"message":"Deadline exceeded.","status":"DEADLINE_EXCEEDED"}})", "UNKNOWN_ERROR",
       "Deadline exceeded.", true},
      {404, R"({"error":{"code":404,"message":"Not found.","status":"NOT_FOUND"}})", "INVALID_REQUEST", "Not found.", false},
      {400, R"({"error":{"code":400,"status":"INVALID_ARGUMENT"}})", "INVALID_REQUEST",
       "the places upstream answered HTTP 400 INVALID_ARGUMENT", false},
      {502, "<html>Bad Gateway</html>", "UNKNOWN_ERROR", "the places upstream answered HTTP 502 with a body that is not JSON", false},
      {503, "", "UNKNOWN_ERROR", "the places upstream answered HTTP 503 with a body that is not JSON", true},
      {429, "slow down", "OVER_QUERY_LIMIT", "the places upstream answered HTTP 429 with a body that is not JSON", true},
      {200, "{\"places\": [", "UNKNOWN_ERROR", "the places upstream answered HTTP 200 with a body that is not JSON", false},
      {403, "{}", "REQUEST_DENIED", "the places upstream answered HTTP 403", false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.body);
    places::PlacesAnswer a = api.interpret(response(c.http, c.body));
    CHECK(a.status == c.status);
    CHECK(a.retryable == c.retry);
    CHECK(places::render_answer(a, 3) == places::error_reply(c.status, c.message));
  }
  CHECK(places::error_reply("UNKNOWN_ERROR", "x") ==
        "{\n   \"error_message\" : \"x\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n"
        "   \"status\" : \"UNKNOWN_ERROR\"\n}");
}

TEST_CASE("New errors Google names for a 400 or 401, and an error without a status, map as the HTTP status does") {
  // README: a body that is not JSON falls back on the HTTP status: 400/404 INVALID_REQUEST, 401/403
  // REQUEST_DENIED. OUT_OF_RANGE and UNAUTHENTICATED are the google.rpc statuses of HTTP 400 and
  // 401, and an error envelope that names no status falls back on its code the same way.
  places::NewApi api(kKey);
  struct Case {
    int http;
    const char* body;
    const char* status;
  } cases[] = {
      {404, "<html>Not Found</html>", "INVALID_REQUEST"},
      {401, "<html>Unauthorized</html>", "REQUEST_DENIED"},
      {400, R"({"error":{"code":400,"message":"Radius out of range.","status":"OUT_OF_RANGE"}})", "INVALID_REQUEST"},
      {401, R"({"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}})",
       "REQUEST_DENIED"},
      {403, R"({"error":{"code":403,"message":"Forbidden."}})", "REQUEST_DENIED"},
      {404, R"({"error":{"code":404,"message":"Not found."}})", "INVALID_REQUEST"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.body);
    places::PlacesAnswer a = api.interpret(response(c.http, c.body));
    CHECK(a.status == c.status);
    CHECK_FALSE(a.retryable);
  }
}

TEST_CASE("RetryPolicy: the first wait is `initial`, each next one `factor` times longer, within the jitter") {
  // retry_policy.h: "about initial x factor^n before retry n+1"; delay(attempt) is the wait after
  // failed attempt number `attempt` (1 for the first).
  places::RetryPolicy exact;
  exact.jitter = 0;
  std::mt19937_64 rng(7);
  CHECK(exact.delay(1, rng) == std::chrono::milliseconds(500));
  CHECK(exact.delay(2, rng) == std::chrono::milliseconds(750));
  CHECK(exact.delay(3, rng) == std::chrono::milliseconds(1125));
  places::RetryPolicy jittered;  // jitter 0.25: each delay scaled by a factor in [0.75, 1.25]
  for (int i = 0; i < 200; ++i) {
    const auto d = jittered.delay(2, rng);
    CHECK(d >= std::chrono::milliseconds(562));
    CHECK(d <= std::chrono::milliseconds(938));
  }
}

TEST_CASE("a body nested too deep is refused, not recursed into (either API, on a loop-sized stack)") {
  // Nesting costs no more bytes than brackets: 150,000 levels fit in 300 KB, far inside
  // max_body_bytes, and a recursive parse or render of them overflows a thread's stack.
  auto nested = [](const std::string& head, size_t depth, const std::string& tail) {
    return head + std::string(depth, '[') + std::string(depth, ']') + tail;
  };
  const std::string deep_legacy = nested(R"({"status":"OK","html_attributions":[],"results":[)", 150000, "]}");
  const std::string deep_new = nested(R"({"places":[)", 150000, "]}");
  std::string legacy_reply, new_reply;
  bool legacy_retry = true, new_retry = true;
  // On a thread of its own with a 1 MiB stack: smaller than a loop's, so recursion would show.
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1 << 20);
  struct Job {
    const std::string* legacy_body;
    const std::string* new_body;
    std::string* legacy_reply;
    std::string* new_reply;
    bool* legacy_retry;
    bool* new_retry;
  } job{&deep_legacy, &deep_new, &legacy_reply, &new_reply, &legacy_retry, &new_retry};
  pthread_t t;
  REQUIRE(pthread_create(&t, &attr, [](void* arg) -> void* {
            auto* j = static_cast<Job*>(arg);
            places::PlacesAnswer a = places::LegacyApi(kKey).interpret(response(200, *j->legacy_body));
            *j->legacy_reply = places::render_answer(a, 20);
            *j->legacy_retry = a.retryable;
            places::PlacesAnswer b = places::NewApi(kKey).interpret(response(200, *j->new_body));
            *j->new_reply = places::render_answer(b, 20);
            *j->new_retry = b.retryable;
            return nullptr;
          }, &job) == 0);
  pthread_join(t, nullptr);
  pthread_attr_destroy(&attr);
  const std::string want =
      places::error_reply("UNKNOWN_ERROR", "the places upstream answered HTTP 200 with JSON nested deeper than 32 levels");
  CHECK(legacy_reply == want);
  CHECK(new_reply == want);
  CHECK_FALSE(legacy_retry);
  CHECK_FALSE(new_retry);

  // Google's own answers nest a few levels (results, geometry, location): well inside the bound,
  // and a result carrying arrays 25 deep still passes through.
  places::PlacesAnswer ok =
      places::LegacyApi(kKey).interpret(response(200, nested(R"({"status":"OK","results":[{"x":)", 25, "}]}")));
  CHECK(ok.status == "OK");
}

TEST_CASE("a body that repeats a key in one object is refused: the bound and the status stay ours") {
  // The first "results" is what the cut to the bound looks at; a second one was copied whole, so a
  // WHATSAT asking for 2 got 31 results, and two "status" members told two stories.
  std::string many = "[";
  for (int i = 0; i < 30; ++i) many += std::string(i ? "," : "") + "{\"name\":\"" + std::to_string(i) + "\"}";
  many += "]";
  const std::string want =
      places::error_reply("UNKNOWN_ERROR", "the places upstream answered HTTP 200 with JSON that repeats a key in one object");
  for (const std::string& body :
       {R"({"status":"OK","html_attributions":[],"results":[{"name":"a"}],"results":)" + many + "}",
        std::string(R"({"status":"OK","html_attributions":[],"results":[],"status":"REQUEST_DENIED"})"),
        std::string(R"({"status":"OK","html_attributions":[],"results":[{"name":"a","geometry":{"location":{"lat":1,"lat":2}}}]})")}) {
    CAPTURE(body);
    places::PlacesAnswer a = places::LegacyApi(kKey).interpret(response(200, body));
    CHECK(places::render_answer(a, 2) == want);
    CHECK_FALSE(a.retryable);
  }
  places::PlacesAnswer b =
      places::NewApi(kKey).interpret(response(200, R"({"places":[{"id":"a"}],"places":[{"id":"b"},{"id":"c"}]})"));
  CHECK(places::render_answer(b, 20) == want);
  // A big object of distinct keys is fine (and checked in n log n time), so are equal keys in
  // different objects.
  std::string wide = R"({"status":"OK","results":[{"a":1},{"a":2}],"x":{)";
  for (int i = 0; i < 100000; ++i) wide += std::string(i ? "," : "") + "\"k" + std::to_string(i) + "\":" + std::to_string(i);
  wide += "}}";
  places::PlacesAnswer ok = places::LegacyApi(kKey).interpret(response(200, wide));
  CHECK(ok.status == "OK");
  CHECK((*ok.doc)["results"].Size() == 2);
  places::PlacesAnswer dup_wide = places::LegacyApi(kKey).interpret(response(200, wide.substr(0, wide.size() - 2) + R"(,"k7":0}})"));
  CHECK(dup_wide.status == "UNKNOWN_ERROR");
}

namespace {

// Keys of 16 bytes that all get one std::hash<std::string_view> value under libstdc++ (its
// _Hash_bytes: 64-bit Murmur with a fixed, public seed, so each key's second 8 bytes can be solved
// for a chosen state after them), each as the text of a JSON string (ASCII, escaped where needed).
std::vector<std::string> colliding_json_keys(size_t n) {
  constexpr uint64_t kMul = (uint64_t{0xc6a4a793} << 32) + 0x5bd1e995;
  uint64_t mul_inv = kMul;
  for (int i = 0; i < 6; ++i) mul_inv *= 2 - kMul * mul_inv;
  const auto shift_mix = [](uint64_t v) { return v ^ (v >> 47); };
  const auto mix = [&](uint64_t x) { return shift_mix(x * kMul) * kMul; };
  const auto unmix = [&](uint64_t y) { return shift_mix(y * mul_inv) * mul_inv; };
  const uint64_t h0 = uint64_t{0xc70f6907} ^ (16 * kMul);
  const uint64_t target = 0x0123456789abcdefULL;  // the state after the two blocks
  std::vector<std::string> keys;
  for (uint64_t counter = 0; keys.size() < n; ++counter) {
    char first[8];
    uint64_t c = counter;
    for (char& ch : first) {
      ch = static_cast<char>('a' + c % 26);
      c /= 26;
    }
    uint64_t x1;
    std::memcpy(&x1, first, 8);
    const uint64_t x2 = unmix((target * mul_inv) ^ ((h0 ^ mix(x1)) * kMul));
    if (x2 & 0x8080808080808080ULL) continue;  // ASCII only
    char second[8];
    std::memcpy(second, &x2, 8);
    std::string key(first, 8);
    for (char ch : second) {
      if (ch < 0x20 || ch == '"' || ch == '\\') {
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(ch));
        key += esc;
      } else {
        key += ch;
      }
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

}  // namespace

TEST_CASE("an object whose distinct keys share one hash is checked for repeats in n log n, not n squared") {
  // A hostile upstream can send a 4 MiB object of ~130,000 keys built to collide in std::hash: a
  // hash set of them costs n squared compares (a minute of a stalled loop).
  const std::vector<std::string> keys = colliding_json_keys(100000);
  std::string body = R"({"status":"OK","results":[],"x":{)";
  for (size_t i = 0; i < keys.size(); ++i) body += (i ? ",\"" : "\"") + keys[i] + "\":0";
  body += "}}";
  rapidjson::Document doc;
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(places::parse_upstream_json(body, &doc) == nullptr);
  const auto took = std::chrono::steady_clock::now() - start;
  const rapidjson::Value& x = doc["x"];
  REQUIRE(x.MemberCount() == keys.size());
  const std::hash<std::string_view> hash;
  const size_t h = hash(std::string_view(x.MemberBegin()->name.GetString(), x.MemberBegin()->name.GetStringLength()));
  size_t same = 0;
  for (auto m = x.MemberBegin(); m != x.MemberEnd(); ++m) {
    same += hash(std::string_view(m->name.GetString(), m->name.GetStringLength())) == h;
  }
  CHECK(same == keys.size());  // the keys do collide (else this test proves nothing)
  // A complexity guard, not a speed target, with wide margins both ways: n log n takes about a
  // tenth of a second here (under a second sanitized, on a busy machine); n squared about 30 s.
  CHECK(took < 3000ms);
  // A repeat among them is still found.
  std::string dup = body.substr(0, body.size() - 2) + ",\"" + keys[12345] + "\":1}}";
  rapidjson::Document d;
  CHECK(places::parse_upstream_json(dup, &d) != nullptr);
}

}  // TEST_SUITE

namespace {

using testing_loop::run_until;

struct Harness {
  std::vector<std::string> log;  // "<kind> <text>"
  std::unique_ptr<places::GooglePlaces> provider;
  EventLoop loop;

  Harness(uint16_t port, const std::string& flavour = "google", std::chrono::milliseconds timeout = 3000ms,
          size_t max_inflight = 16, size_t max_queued = 0) {
    std::string error;
    places::GoogleOptions o;
    o.provider = flavour;
    o.endpoint = *http::parse_url("http://127.0.0.1:" + std::to_string(port), &error);
    o.key = kKey;
    o.timeout = timeout;
    o.max_inflight = max_inflight;
    o.max_queued = max_queued;
    o.retry.initial = 50ms;
    o.log = [this](int, char kind, std::string_view text) { log.push_back(std::string(1, kind) + " " + std::string(text)); };
    provider = std::make_unique<places::GooglePlaces>(std::move(o));
  }
  ~Harness() {
    testing_loop::run_on(loop, [&] { provider->stop_loop(loop); });
  }
  // Asks for `q` on the loop; the answers land in `out`.
  void ask(const places::PlacesQuery& q, std::vector<std::string>& out) {
    provider->nearby(loop, q, [&out](std::string json) { out.push_back(std::move(json)); });
  }
  // As ask(), for a client that is there while *there holds.
  void ask_while(const places::PlacesQuery& q, std::vector<std::string>& out, const bool* there) {
    provider->nearby(loop, q, [&out](std::string json) { out.push_back(std::move(json)); }, [there] { return *there; });
  }
  bool key_logged() const {
    for (auto& l : log) {
      if (l.find("sekrit") != std::string::npos) return true;
    }
    return false;
  }
  bool logged(const std::string& part) const {
    for (auto& l : log) {
      if (l.find(part) != std::string::npos) return true;
    }
    return false;
  }
};

std::string legacy_json(const std::string& status, const std::string& message = "") {
  return "{\"html_attributions\":[],\"results\":[]," +
         (message.empty() ? std::string() : "\"error_message\":\"" + message + "\",") + "\"status\":\"" + status + "\"}";
}

int result_count(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  REQUIRE_FALSE(d.HasParseError());
  return static_cast<int>(d["results"].Size());
}

}  // namespace

TEST_SUITE("places google provider") {

TEST_CASE("google: the upstream's answer, cut to the bound, in Google's layout; the key never logged") {
  std::string file = fixture();
  std::string compact = relayout(file, false);
  TestServer server([&](int, int, const std::string&) { return Reply{testing_http::response("200 OK", compact)}; });
  Harness h(server.port());
  std::vector<std::string> answers;
  places::PlacesQuery one = kUcla;
  one.bound = 1;
  testing_loop::run_on(h.loop, [&] { h.ask(one, answers); });
  REQUIRE(run_until(h.loop, [&] { return answers.size() == 1; }));
  places::LegacyApi api(kKey);
  CHECK(answers[0] == places::render_answer(api.interpret(response(200, file)), 1));
  CHECK(result_count(answers[0]) == 1);
  auto got = server.received();
  REQUIRE(got.size() == 1);
  CHECK(got[0].rfind("GET /maps/api/place/nearbysearch/json?location=34.06893,-118.445127&radius=10000&key=sekrit%2Fkey%2B42 HTTP/1.1\r\n", 0) == 0);
  CHECK(h.logged("> GET http://127.0.0.1:" + std::to_string(server.port()) +
                 "/maps/api/place/nearbysearch/json?location=34.06893,-118.445127&radius=10000&key=***"));
  CHECK(h.logged("< HTTP 200 in "));
  CHECK(h.logged("ms: status OK, 2 results"));
  CHECK(h.logged("* connected to 127.0.0.1:"));
  CHECK_FALSE(h.key_logged());
}

TEST_CASE("google-new: the key in its header, places translated") {
  const char* body = R"({"places":[{"id":"geonames:1","displayName":{"text":"A"},"location":{"latitude":1.5,"longitude":2.5}}]})";
  TestServer server([&](int, int, const std::string&) { return Reply{testing_http::response("200 OK", body)}; });
  Harness h(server.port(), "google-new");
  std::vector<std::string> answers;
  testing_loop::run_on(h.loop, [&] { h.ask(kUcla, answers); });
  REQUIRE(run_until(h.loop, [&] { return answers.size() == 1; }));
  CHECK(answers[0].find("\"name\" : \"A\"") != std::string::npos);
  CHECK(answers[0].find("\"status\" : \"OK\"") != std::string::npos);
  auto got = server.received();
  REQUIRE(got.size() == 1);
  CHECK(got[0].find("X-Goog-Api-Key: sekrit/key+42\r\n") != std::string::npos);
  CHECK(h.logged("> POST http://127.0.0.1:" + std::to_string(server.port()) + "/v1/places:searchNearby"));
  CHECK_FALSE(h.key_logged());
}

TEST_CASE("identical requests at the same moment share one upstream call, each cut to its bound") {
  std::string compact = relayout(fixture(), false);
  TestServer server([&](int, int, const std::string&) {
    std::this_thread::sleep_for(200ms);
    return Reply{testing_http::response("200 OK", compact)};
  });
  Harness h(server.port());
  std::vector<std::string> a, b, c, other;
  places::PlacesQuery q1 = kUcla, q2 = kUcla, far = kUcla;
  q1.bound = 1;
  q2.bound = 20;
  far.lat = 10;
  testing_loop::run_on(h.loop, [&] {
    h.ask(q1, a);
    h.ask(q2, b);
    h.ask(q1, c);
    h.ask(far, other);
  });
  REQUIRE(run_until(h.loop, [&] { return a.size() + b.size() + c.size() + other.size() == 4; }));
  CHECK(server.requests() == 2);
  CHECK(h.provider->coalesced() == 2);
  CHECK(h.provider->upstream_calls() == 2);
  CHECK(result_count(a[0]) == 1);
  CHECK(result_count(b[0]) == 2);
  CHECK(c[0] == a[0]);
  // Once answered, the same request goes upstream again.
  testing_loop::run_on(h.loop, [&] { h.ask(q1, a); });
  REQUIRE(run_until(h.loop, [&] { return a.size() == 2; }));
  CHECK(server.requests() == 3);
}

TEST_CASE("max_inflight bounds upstream calls; the queue waits; past it UNKNOWN_ERROR at once") {
  TestServer server([&](int, int, const std::string&) {
    std::this_thread::sleep_for(150ms);
    return Reply{testing_http::response("200 OK", legacy_json("ZERO_RESULTS"))};
  });
  Harness h(server.port(), "google", 3000ms, 1, 1);
  std::vector<std::string> first, second, third;
  places::PlacesQuery q2 = kUcla, q3 = kUcla;
  q2.lat = 1;
  q3.lat = 2;
  bool third_at_once = false;
  testing_loop::run_on(h.loop, [&] {
    h.ask(kUcla, first);
    h.ask(q2, second);
    h.ask(q3, third);
    third_at_once = third.size() == 1;
  });
  CHECK(third_at_once);
  REQUIRE(third.size() == 1);
  CHECK(third[0] == places::error_reply("UNKNOWN_ERROR", "too many places requests in progress (max_inflight 1); try again later"));
  REQUIRE(run_until(h.loop, [&] { return first.size() + second.size() == 2; }));
  CHECK(result_count(first[0]) == 0);
  CHECK(second[0].find("ZERO_RESULTS") != std::string::npos);
  CHECK(server.requests() == 2);
  CHECK(server.connections() == 1);  // never two calls at once: the second waited, then reused it
  CHECK(h.provider->refused() == 1);
}

TEST_CASE("a queued call that gets no slot within the timeout is answered UNKNOWN_ERROR") {
  TestServer server([&](int, int, const std::string&) { return Reply{"", false, true}; });
  Harness h(server.port(), "google", 300ms, 1, 4);
  std::vector<std::string> first, second;
  places::PlacesQuery q2 = kUcla;
  q2.lat = 1;
  auto start = std::chrono::steady_clock::now();
  testing_loop::run_on(h.loop, [&] {
    h.ask(kUcla, first);
    h.ask(q2, second);
  });
  REQUIRE(run_until(h.loop, [&] { return first.size() + second.size() == 2; }));
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took < 1000ms);
  CHECK(first[0] == places::error_reply("UNKNOWN_ERROR", "no answer from the places upstream within 300 ms"));
  CHECK(second[0] == places::error_reply("UNKNOWN_ERROR",
                                         "no answer from the places upstream within 300 ms (all 1 upstream slots busy)"));
}

TEST_CASE("calls whose clients left are dropped, not sent: when their slot comes, when the queue is full") {
  TestServer server([&](int, int, const std::string&) {
    std::this_thread::sleep_for(150ms);
    return Reply{testing_http::response("200 OK", legacy_json("ZERO_RESULTS"))};
  });
  Harness h(server.port(), "google", 3000ms, 1, 2);
  std::vector<std::string> first, gone1, gone2, later, last;
  bool there1 = true, there2 = true, there_later = true, there_last = true;
  places::PlacesQuery q2 = kUcla, q3 = kUcla, q4 = kUcla, q5 = kUcla;
  q2.lat = 1;
  q3.lat = 2;
  q4.lat = 3;
  q5.lat = 4;
  testing_loop::run_on(h.loop, [&] {
    h.ask(kUcla, first);  // holds the one slot
    h.ask_while(q2, gone1, &there1);
    h.ask_while(q3, gone2, &there2);  // the queue (2) is full
    there1 = there2 = false;          // both clients leave
    h.ask_while(q4, later, &there_later);  // takes the place of one that left instead of being refused
    h.ask_while(q5, last, &there_last);
  });
  REQUIRE(run_until(h.loop, [&] { return first.size() + gone1.size() + gone2.size() + later.size() + last.size() == 5; }));
  const std::string left = places::error_reply("UNKNOWN_ERROR", "the client left before the places request was sent");
  CHECK(gone1[0] == left);
  CHECK(gone2[0] == left);
  CHECK(later[0].find("ZERO_RESULTS") != std::string::npos);
  CHECK(last[0].find("ZERO_RESULTS") != std::string::npos);
  CHECK(h.provider->refused() == 0);
  CHECK(h.provider->abandoned() == 2);
  CHECK(server.requests() == 3);  // first, q4, q5: none for the clients that left

  // A client that leaves while its call waits for its slot: dropped when the slot comes.
  std::vector<std::string> a, b;
  bool b_there = true;
  testing_loop::run_on(h.loop, [&] {
    h.ask(q2, a);
    h.ask_while(q3, b, &b_there);
    b_there = false;
  });
  REQUIRE(run_until(h.loop, [&] { return a.size() + b.size() == 2; }));
  CHECK(b[0] == left);
  CHECK(server.requests() == 4);
  CHECK(h.provider->abandoned() == 3);
}

TEST_CASE("a call whose client left is not retried") {
  TestServer server([&](int, int, const std::string&) {
    return Reply{testing_http::response("503 Service Unavailable", "<html>busy</html>")};
  });
  Harness h(server.port());
  std::vector<std::string> answers;
  bool there = false;
  testing_loop::run_on(h.loop, [&] { h.ask_while(kUcla, answers, &there); });
  REQUIRE(run_until(h.loop, [&] { return answers.size() == 1; }));
  CHECK(server.requests() == 1);
  CHECK(answers[0].find("UNKNOWN_ERROR") != std::string::npos);
  CHECK_FALSE(h.logged("* retrying in "));
}

TEST_CASE("HTTP 503 is retried with backoff until an answer comes") {
  std::string compact = relayout(fixture(), false);
  TestServer server([&](int, int i, const std::string&) {
    if (i < 2) return Reply{testing_http::response("503 Service Unavailable", "<html>busy</html>")};
    return Reply{testing_http::response("200 OK", compact)};
  });
  Harness h(server.port());
  std::vector<std::string> answers;
  testing_loop::run_on(h.loop, [&] { h.ask(kUcla, answers); });
  REQUIRE(run_until(h.loop, [&] { return answers.size() == 1; }));
  CHECK(result_count(answers[0]) == 2);
  CHECK(server.requests() == 3);
  CHECK(h.provider->upstream_attempts() == 3);
  CHECK(h.logged("! HTTP 503 in "));
  CHECK(h.logged("* retrying in "));
  CHECK(h.logged("(attempt 3)"));
}

TEST_CASE("no retry on REQUEST_DENIED, INVALID_REQUEST, HTTP 400/403 or the daily quota") {
  struct Case {
    std::string wire;
    std::string status;
  } cases[] = {
      {testing_http::response("200 OK", legacy_json("REQUEST_DENIED", "The provided API key is invalid.")), "REQUEST_DENIED"},
      {testing_http::response("400 Bad Request", legacy_json("INVALID_REQUEST", "Invalid request.")), "INVALID_REQUEST"},
      {testing_http::response("403 Forbidden", "<html>no</html>"), "REQUEST_DENIED"},
      {testing_http::response("200 OK", legacy_json("OVER_QUERY_LIMIT", "You have exceeded your daily request quota for this API.")),
       "OVER_QUERY_LIMIT"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.status);
    TestServer server([&](int, int, const std::string&) { return Reply{c.wire}; });
    Harness h(server.port());
    std::vector<std::string> answers;
    testing_loop::run_on(h.loop, [&] { h.ask(kUcla, answers); });
    REQUIRE(run_until(h.loop, [&] { return answers.size() == 1; }));
    CHECK(answers[0].find("\"status\" : \"" + c.status + "\"") != std::string::npos);
    run_until(h.loop, [] { return false; }, 150ms);
    CHECK(server.requests() == 1);
  }
}

TEST_CASE("OVER_QUERY_LIMIT is retried within the budget, then passed on, in time") {
  TestServer server([&](int, int, const std::string&) {
    return Reply{testing_http::response("200 OK", legacy_json("OVER_QUERY_LIMIT", "You have exceeded your rate-limit for this API."))};
  });
  Harness h(server.port(), "google", 1000ms);
  std::vector<std::string> answers;
  auto start = std::chrono::steady_clock::now();
  testing_loop::run_on(h.loop, [&] { h.ask(kUcla, answers); });
  REQUIRE(run_until(h.loop, [&] { return answers.size() == 1; }));
  CHECK(std::chrono::steady_clock::now() - start < 1100ms);
  CHECK(answers[0] == places::error_reply("OVER_QUERY_LIMIT", "You have exceeded your rate-limit for this API."));
  CHECK(server.requests() >= 3);
  CHECK(server.requests() <= 5);
}

TEST_CASE("a retry the timeout cuts short passes on the last answer, not \"no answer\"") {
  // The upstream answers OVER_QUERY_LIMIT, then stalls on the retry until the WHATSAT's time is up:
  // the reply is the answer it gave, not a claim that it never answered.
  TestServer server([&](int, int i, const std::string&) {
    if (i == 0) {
      return Reply{testing_http::response("200 OK", legacy_json("OVER_QUERY_LIMIT", "You have exceeded your rate-limit for this API."))};
    }
    return Reply{"", false, true};
  });
  Harness h(server.port(), "google", 1000ms);
  std::vector<std::string> answers;
  auto start = std::chrono::steady_clock::now();
  testing_loop::run_on(h.loop, [&] { h.ask(kUcla, answers); });
  REQUIRE(run_until(h.loop, [&] { return answers.size() == 1; }));
  CHECK(std::chrono::steady_clock::now() - start < 1300ms);
  CHECK(server.requests() == 2);
  CHECK(answers[0] == places::error_reply("OVER_QUERY_LIMIT", "You have exceeded your rate-limit for this API."));
}

TEST_CASE("a stalled upstream, a refused connection: UNKNOWN_ERROR saying why, within the timeout") {
  TestServer server([&](int, int, const std::string&) { return Reply{"", false, true}; });
  Harness h(server.port(), "google", 400ms);
  std::vector<std::string> answers;
  auto start = std::chrono::steady_clock::now();
  testing_loop::run_on(h.loop, [&] { h.ask(kUcla, answers); });
  REQUIRE(run_until(h.loop, [&] { return answers.size() == 1; }));
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 390ms);
  CHECK(took < 900ms);
  CHECK(answers[0] == places::error_reply("UNKNOWN_ERROR", "no answer from the places upstream within 400 ms"));

  uint16_t dead;
  {
    TestServer gone([](int, int, const std::string&) { return Reply{}; });
    dead = gone.port();
  }
  Harness refused(dead);
  std::vector<std::string> r;
  testing_loop::run_on(refused.loop, [&] { refused.ask(kUcla, r); });
  REQUIRE(run_until(refused.loop, [&] { return r.size() == 1; }));
  CHECK(r[0].find("\"error_message\" : \"the places upstream failed: cannot connect to 127.0.0.1:" + std::to_string(dead) +
                  ": 127.0.0.1:" + std::to_string(dead) + ": Connection refused\"") != std::string::npos);
  CHECK(r[0].find("UNKNOWN_ERROR") != std::string::npos);
}

TEST_CASE("stop_loop answers the pending WHATSATs at once") {
  TestServer server([&](int, int, const std::string&) { return Reply{"", false, true}; });
  Harness h(server.port(), "google", 5000ms);
  std::vector<std::string> answers;
  testing_loop::run_on(h.loop, [&] {
    h.ask(kUcla, answers);
    h.ask(kUcla, answers);
  });
  REQUIRE(run_until(h.loop, [&] { return server.requests() == 1; }));
  testing_loop::run_on(h.loop, [&] { h.provider->stop_loop(h.loop); });
  REQUIRE(answers.size() == 2);
  CHECK(answers[0] == places::error_reply("UNKNOWN_ERROR", "the server is stopping"));
  CHECK(answers[1] == answers[0]);
  // A WHATSAT after the stop (the loop still runs until the server's stop completes) is answered
  // at once, without going upstream.
  testing_loop::run_on(h.loop, [&] { h.ask(kUcla, answers); });
  REQUIRE(answers.size() == 3);
  CHECK(answers[2] == answers[0]);
  CHECK(server.requests() == 1);
}

}  // TEST_SUITE

TEST_SUITE("places google concurrency") {

TEST_CASE("one provider on two loops: slots shared across loops, every WHATSAT answered once") {
  std::string body = legacy_json("ZERO_RESULTS");
  TestServer server([&](int, int, const std::string&) { return Reply{testing_http::response("200 OK", body)}; });
  std::string error;
  places::GoogleOptions o;
  o.endpoint = *http::parse_url("http://127.0.0.1:" + std::to_string(server.port()), &error);
  o.key = kKey;
  o.max_inflight = 2;  // fewer slots than the two loops want: calls queue and cross-loop wake-ups run
  o.max_queued = 1000;
  std::atomic<int> log_lines{0};
  o.log = [&](int, char, std::string_view) { log_lines.fetch_add(1); };
  places::GooglePlaces provider(std::move(o));
  reactor::LoopGroup group(2);
  group.start();
  const int per_loop = 100;
  std::atomic<int> answered{0}, wrong{0};
  for (int l = 0; l < 2; ++l) {
    EventLoop& loop = group.loop(l);
    loop.queue([&, l] {
      for (int i = 0; i < per_loop; ++i) {
        places::PlacesQuery q{static_cast<double>(l * 1000 + i) / 100.0, 0, 1000, 3};
        provider.nearby(loop, q, [&](std::string json) {
          bool good = loop.in_loop_thread() && json.find("ZERO_RESULTS") != std::string::npos;
          (good ? answered : wrong).fetch_add(1);
        });
      }
    });
  }
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (answered + wrong < 2 * per_loop && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  std::atomic<int> stopped{0};
  for (int l = 0; l < 2; ++l) {
    group.loop(l).queue([&, l] {
      provider.stop_loop(group.loop(l));
      stopped.fetch_add(1);
    });
  }
  while (stopped < 2 && std::chrono::steady_clock::now() < deadline + 5s) std::this_thread::sleep_for(1ms);
  group.stop();
  CHECK(answered.load() == 2 * per_loop);
  CHECK(wrong.load() == 0);
  CHECK(server.requests() == 2 * per_loop);
  CHECK(server.connections() <= 4);  // each loop's pool needs at most max_inflight connections
  CHECK(log_lines.load() >= 4 * per_loop);
}

}  // TEST_SUITE
