// The offline places provider: gazetteer cities rendered as a legacy Nearby Search response.
#include "places/offline_places.h"

#include <charconv>
#include <cstring>
#include <string_view>
#include <utility>

#include "places/google_json.h"

namespace places {

namespace {

// A point's viewport is its location ± this many degrees (what Google returns for cities).
constexpr double kViewportHalfDeg = 0.0013489802915;
// Room for a name (twice, escaped) in the reservation of an answer: most need less.
constexpr size_t kNameRoom = 64;

// The constant parts of the layout, at their fixed depths (see google_json.h for the rules).
constexpr std::string_view kHead = "{\n   \"html_attributions\" : [],\n   \"results\" : ";
constexpr std::string_view kEmptyTail = "[],\n   \"status\" : \"ZERO_RESULTS\"\n}";
constexpr std::string_view kOkTail = "\n   ],\n   \"status\" : \"OK\"\n}";
constexpr std::string_view kLocation =
    "{\n"
    "         \"geometry\" : {\n"
    "            \"location\" : {\n"
    "               \"lat\" : ";
constexpr std::string_view kLng = ",\n               \"lng\" : ";
constexpr std::string_view kNortheast =
    "\n"
    "            },\n"
    "            \"viewport\" : {\n"
    "               \"northeast\" : {\n"
    "                  \"lat\" : ";
constexpr std::string_view kViewportLng = ",\n                  \"lng\" : ";
constexpr std::string_view kSouthwest =
    "\n"
    "               },\n"
    "               \"southwest\" : {\n"
    "                  \"lat\" : ";
constexpr std::string_view kIconsAndName =
    "\n"
    "               }\n"
    "            }\n"
    "         },\n"
    "         \"icon\" : \"https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/geocode-71.png\",\n"
    "         \"icon_background_color\" : \"#7B9EB0\",\n"
    "         \"icon_mask_base_uri\" : \"https://maps.gstatic.com/mapfiles/place_api/icons/v2/generic_pinlet\",\n"
    "         \"name\" : ";
constexpr std::string_view kPlaceId = ",\n         \"place_id\" : \"geonames:";
constexpr std::string_view kReference = "\",\n         \"reference\" : \"geonames:";
constexpr std::string_view kTypes =
    "\",\n"
    "         \"scope\" : \"GOOGLE\",\n"
    "         \"types\" : [ \"locality\", \"political\" ],\n"
    "         \"vicinity\" : ";
constexpr std::string_view kResultEnd = "\n      }";
constexpr std::string_view kFirstResult = "\n      ";
constexpr std::string_view kNextResult = ",\n      ";

// The packed form of a city's numbers: characters as 4-bit codes into kNibbleChars (every
// character `%.16g` can write for a finite number), each number ended by kEndOfNumber.
constexpr char kNibbleChars[16] = {'0', '1', '2', '3', '4', '5', '6', '7',
                                   '8', '9', '-', '.', 'e', '+', '?', '?'};
constexpr uint8_t kEndOfNumber = 0xf;
constexpr int kNumbersPerCity = 6;
// The longest number `%.16g` writes: sign, 16 digits, point, "e-308".
constexpr size_t kMaxNumberChars = 24;
// The constant bytes of one result object, and the most any result takes besides its name (its
// separator, the constants, six numbers, two ids and the name's quotes).
constexpr size_t kResultConstBytes = kLocation.size() + kLng.size() + kNortheast.size() +
                                     2 * kViewportLng.size() + kSouthwest.size() +
                                     kIconsAndName.size() + kPlaceId.size() + kReference.size() +
                                     kTypes.size() + kResultEnd.size();
constexpr size_t kMaxIdChars = 10;  // a uint32_t
// (+ 2: unpack_number() may write two bytes past a number.)
constexpr size_t kMaxResultBytesBesidesName =
    kNextResult.size() + kResultConstBytes + kNumbersPerCity * kMaxNumberChars + 2 * kMaxIdChars + 4 + 2;
// The most bytes one city's packed form takes: the flags byte, then six numbers, each with its end
// and padded to a whole byte.
constexpr size_t kMaxPackedBytes = 1 + kNumbersPerCity * (kMaxNumberChars / 2 + 1);
// Flags, the first byte of a city's packed form.
constexpr uint8_t kNameNeedsEscape = 1;  // the name has bytes append_google_string escapes
constexpr uint8_t kNotPacked = 2;        // formatted on each reply (a number was not packable)

void append_uint(std::string& out, uint32_t n) {
  char buf[12];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

void append_result_formatted(std::string& out, const City& c) {
  out += kLocation;
  append_google_double(out, c.lat);
  out += kLng;
  append_google_double(out, c.lng);
  out += kNortheast;
  append_google_double(out, c.lat + kViewportHalfDeg);
  out += kViewportLng;
  append_google_double(out, c.lng + kViewportHalfDeg);
  out += kSouthwest;
  append_google_double(out, c.lat - kViewportHalfDeg);
  out += kViewportLng;
  append_google_double(out, c.lng - kViewportHalfDeg);
  out += kIconsAndName;
  append_google_string(out, c.name);
  out += kPlaceId;
  append_uint(out, c.geoname_id);
  out += kReference;
  append_uint(out, c.geoname_id);
  out += kTypes;
  append_google_string(out, c.name);
  out += kResultEnd;
}


// The nibble code of each byte, or -1 when kNibbleChars has no such character.
struct NibbleCodes {
  int8_t code[256];
  constexpr NibbleCodes() : code() {
    for (int c = 0; c < 256; ++c) code[c] = -1;
    for (int i = 0; i < 14; ++i) code[static_cast<unsigned char>(kNibbleChars[i])] = static_cast<int8_t>(i);
  }
};
constexpr NibbleCodes kCodes;

// Whether append_google_string changes `s` beyond quoting it.
bool needs_escape(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>') return true;
  }
  return false;
}

// For each byte of a packed number: its two characters (low nibble first; kEndOfNumber gives a
// character that is then not counted), and how many it holds before the end of the number.
struct NibblePairs {
  char chars[256][2];
  uint8_t count[256];
  constexpr NibblePairs() : chars(), count() {
    for (int b = 0; b < 256; ++b) {
      int lo = b & 0xf, hi = b >> 4;
      chars[b][0] = kNibbleChars[lo];
      chars[b][1] = kNibbleChars[hi];
      count[b] = static_cast<uint8_t>(lo == kEndOfNumber ? 0 : hi == kEndOfNumber ? 1 : 2);
    }
  }
};
constexpr NibblePairs kPairs;

// Writes the packed number at `p` to `w` (two bytes at a time: may write two bytes past it) and
// advances both past it.
inline void unpack_number(const uint8_t*& p, char*& w) {
  for (;;) {
    uint8_t b = *p++;
    std::memcpy(w, kPairs.chars[b], 2);
    w += kPairs.count[b];
    if (kPairs.count[b] < 2) return;
  }
}

// Copies `s` to `w`; returns the end.
inline char* put(char* w, std::string_view s) {
  std::memcpy(w, s.data(), s.size());
  return w + s.size();
}

}  // namespace

OfflinePlaces::OfflinePlaces(std::shared_ptr<const Gazetteer> gazetteer)
    : gazetteer_(std::move(gazetteer)) {
  const Gazetteer& g = *gazetteer_;
  packed_at_.reserve(g.size());
  // Room for the longest form up front: growing (or shrinking) would copy, and the heap keeps the
  // freed block. Pages never written are never resident, so only what is used costs memory.
  packed_.reserve(g.size() * kMaxPackedBytes);
  std::string text;
  uint8_t form[kMaxPackedBytes];  // one city's packed form, built here and then appended
  for (size_t i = 0; i < g.size(); ++i) {
    const City& c = g.city(i);
    const double numbers[kNumbersPerCity] = {c.lat,
                                             c.lng,
                                             c.lat + kViewportHalfDeg,
                                             c.lng + kViewportHalfDeg,
                                             c.lat - kViewportHalfDeg,
                                             c.lng - kViewportHalfDeg};
    uint8_t flags = needs_escape(c.name) ? kNameNeedsEscape : 0;
    size_t n = 1;
    for (double d : numbers) {
      text.clear();
      append_google_double(text, d);
      bool packable = text.size() <= kMaxNumberChars;
      for (char ch : text) packable = packable && kCodes.code[static_cast<unsigned char>(ch)] >= 0;
      if (!packable) {  // never for finite coordinates; kept correct all the same
        flags |= kNotPacked;
        n = 1;
        break;
      }
      // Characters two to a byte, low nibble first, then the end (and a second one as padding).
      text.push_back(static_cast<char>(kEndOfNumber));
      if (text.size() & 1) text.push_back(static_cast<char>(kEndOfNumber));
      for (size_t j = 0; j < text.size(); j += 2) {
        auto code = [&](char ch) {
          return static_cast<uint8_t>(ch == static_cast<char>(kEndOfNumber) ? kEndOfNumber
                                                                            : kCodes.code[static_cast<unsigned char>(ch)]);
        };
        form[n++] = static_cast<uint8_t>(code(text[j]) | code(text[j + 1]) << 4);
      }
    }
    form[0] = flags;
    packed_at_.push_back(static_cast<uint32_t>(packed_.size()));
    packed_.insert(packed_.end(), form, form + n);
  }
}

void OfflinePlaces::append_result(std::string& out, uint32_t i) const {
  const City& c = gazetteer_->city(i);
  const uint8_t* p = packed_.data() + packed_at_[i];
  const uint8_t flags = *p++;
  if (flags & kNotPacked) {
    append_result_formatted(out, c);
    return;
  }
  // Unpack the six numbers into one buffer.
  char text[kNumbersPerCity * kMaxNumberChars + 2];
  size_t end[kNumbersPerCity];
  char* w = text;
  for (int n = 0; n < kNumbersPerCity; ++n) {
    unpack_number(p, w);
    end[n] = static_cast<size_t>(w - text);
  }
  auto number = [&](int n) {
    size_t from = n == 0 ? 0 : end[n - 1];
    out.append(text + from, end[n] - from);
  };
  auto name = [&] {
    if (flags & kNameNeedsEscape) {
      append_google_string(out, c.name);
    } else {
      out += '"';
      out += c.name;
      out += '"';
    }
  };
  char id[12];
  size_t id_len = static_cast<size_t>(std::to_chars(id, id + sizeof id, c.geoname_id).ptr - id);

  out += kLocation;
  number(0);
  out += kLng;
  number(1);
  out += kNortheast;
  number(2);
  out += kViewportLng;
  number(3);
  out += kSouthwest;
  number(4);
  out += kViewportLng;
  number(5);
  out += kIconsAndName;
  name();
  out += kPlaceId;
  out.append(id, id_len);
  out += kReference;
  out.append(id, id_len);
  out += kTypes;
  name();
  out += kResultEnd;
}

char* OfflinePlaces::write_plain_result(char* w, uint32_t i) const {
  const City& c = gazetteer_->city(i);
  const uint8_t* p = packed_.data() + packed_at_[i];
  ++p;  // the flags, 0
  auto number = [&] { unpack_number(p, w); };
  auto name = [&] {
    *w++ = '"';
    w = put(w, c.name);
    *w++ = '"';
  };
  w = put(w, kLocation);
  number();
  w = put(w, kLng);
  number();
  w = put(w, kNortheast);
  number();
  w = put(w, kViewportLng);
  number();
  w = put(w, kSouthwest);
  number();
  w = put(w, kViewportLng);
  number();
  w = put(w, kIconsAndName);
  name();
  w = put(w, kPlaceId);
  char* id = w;
  w = std::to_chars(w, w + kMaxIdChars, c.geoname_id).ptr;
  size_t id_len = static_cast<size_t>(w - id);
  w = put(w, kReference);
  std::memmove(w, id, id_len);
  w += id_len;
  w = put(w, kTypes);
  name();
  return put(w, kResultEnd);
}

void OfflinePlaces::append_answer(std::string& out, const PlacesQuery& q) const {
  // Per thread, so that a shared provider needs no lock; grows to the largest match set seen.
  thread_local std::vector<Gazetteer::Hit> hits;
  size_t n = 0;
  if (q.bound > 0) n = gazetteer_->nearby_hits(q.lat, q.lng, q.radius_m, static_cast<size_t>(q.bound), hits);
  if (n == 0) {
    out += kHead;
    out += kEmptyTail;
    return;
  }
  out.reserve(out.size() + kHead.size() + n * (kMaxResultBytesBesidesName + kNameRoom) + kOkTail.size());
  out += kHead;
  out += '[';
  // The common case, every name plain and every city packed: each result is copied by pointer
  // into room made for its worst case, then the string is cut to what was written. (Room for one
  // result at a time: zeroing it stays cheap, where one large resize would cost a rep stosb.)
  bool plain = true;
  for (size_t i = 0; i < n; ++i) plain = plain && packed_[packed_at_[hits[i].city]] == 0;
  if (plain) {
    for (size_t i = 0; i < n; ++i) {
      uint32_t city = hits[i].city;
      size_t at = out.size();
      out.resize(at + kMaxResultBytesBesidesName + 2 * gazetteer_->city(city).name.size());
      char* w = put(out.data() + at, i == 0 ? kFirstResult : kNextResult);
      w = write_plain_result(w, city);
      out.resize(static_cast<size_t>(w - out.data()));
    }
    out += kOkTail;
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    out += i == 0 ? kFirstResult : kNextResult;
    append_result(out, hits[i].city);
  }
  out += kOkTail;
}

std::string OfflinePlaces::render(const PlacesQuery& q) const {
  std::string out;
  append_answer(out, q);
  return out;
}

std::string OfflinePlaces::render_cities(const std::vector<const City*>& cities) {
  std::string out;
  out += kHead;
  if (cities.empty()) {
    out += kEmptyTail;
    return out;
  }
  out += '[';
  for (size_t i = 0; i < cities.size(); ++i) {
    out += i == 0 ? kFirstResult : kNextResult;
    append_result_formatted(out, *cities[i]);
  }
  out += kOkTail;
  return out;
}

void OfflinePlaces::nearby(reactor::EventLoop&, const PlacesQuery& q, Done done, Wanted) {
  done(render(q));
}

bool OfflinePlaces::answer_now(const PlacesQuery& q, std::string& out) const {
  append_answer(out, q);
  return true;
}

}  // namespace places
