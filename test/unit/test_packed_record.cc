// Packed text and stored AT records (protocol/packed_text.h, protocol/packed_record.h): every input
// comes back byte for byte, the sizes are what is written, numbers take half a byte per character,
// and malformed streams are refused rather than read past their end.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "protocol/packed_record.h"
#include "protocol/packed_text.h"

namespace {

std::string pack(std::string_view text) {
  std::string out(protocol::packed_size(text), '\0');
  protocol::pack_text(text, reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

std::string unpack(std::string_view packed, bool* ok = nullptr) {
  std::string out = "prefix:";
  bool good = protocol::unpack_text(reinterpret_cast<const uint8_t*>(packed.data()), packed.size(), &out);
  if (ok) *ok = good;
  REQUIRE(out.rfind("prefix:", 0) == 0);  // appended, never overwritten
  return out.substr(7);
}

// Random text from `alphabet` (or any byte when empty).
std::string random_text(std::mt19937& rng, size_t n, std::string_view alphabet) {
  std::string s(n, '\0');
  for (auto& c : s) {
    c = alphabet.empty() ? static_cast<char>(rng() & 0xff) : alphabet[rng() % alphabet.size()];
  }
  return s;
}

std::vector<uint8_t> stored(std::string_view record, uint8_t code) {
  protocol::RecordForm form(record);
  std::string out = "junk from before";
  form.store(code, &out);
  CHECK(protocol::stored_record_bytes(reinterpret_cast<const uint8_t*>(out.data())) == out.size());
  return std::vector<uint8_t>(out.begin(), out.end());
}

}  // namespace

TEST_SUITE("packed text") {
  TEST_CASE("numbers and spaces take half a byte per character") {
    CHECK(pack("").empty());
    CHECK(pack("+34.068930-118.445127").size() == 11);
    CHECK(pack("1520023934.918963997").size() == 10);
    CHECK(unpack(pack("+34.068930-118.445127 1520023934.918963997")) == "+34.068930-118.445127 1520023934.918963997");
    CHECK(unpack(pack("7")) == "7");  // an odd count ends in padding
  }

  TEST_CASE("any bytes round-trip, in runs of raw bytes that cost one byte more per 16") {
    std::mt19937 rng(3);
    const std::string_view alphabets[] = {"0123456789+-. ", "0123456789+-. x", "abc", "", "9\t\r\n.\x80\xff"};
    for (int trial = 0; trial < 20000; ++trial) {
      const std::string text = random_text(rng, rng() % 70, alphabets[trial % 5]);
      const std::string packed = pack(text);
      bool ok = false;
      REQUIRE(unpack(packed, &ok) == text);
      CHECK(ok);
      // Worst case: lone raw bytes between packed ones ("x9x9"), 5 codes for 2 characters.
      CHECK(packed.size() <= (5 * text.size() + 7) / 4);
      if (alphabets[trial % 5] == "abc") CHECK(packed.size() == text.size() + (text.size() + 15) / 16);
    }
  }

  TEST_CASE("the fast packer writes what the general one does, or says it cannot") {
    std::mt19937 rng(4);
    for (int trial = 0; trial < 40000; ++trial) {
      std::string text = random_text(rng, rng() % 70, "0123456789+-. ");
      const bool spoil = trial % 3 == 0 && !text.empty();
      if (spoil) text[rng() % text.size()] = "x\t/\x80"[rng() % 4];  // one byte without a code
      // Readable bytes after the text: none, a few, or enough for a whole 16-byte load.
      const size_t slack = rng() % 3 == 0 ? 0 : rng() % 20;
      const std::string buffer = text + random_text(rng, slack, "");
      std::string fast(text.size() / 2 + 1 + 8, '\x5a');
      const bool ok = protocol::pack_all_coded(buffer.data(), text.size(), buffer.size(),
                                               reinterpret_cast<uint8_t*>(fast.data()));
      REQUIRE(ok == !spoil);
      if (spoil) continue;
      REQUIRE(protocol::packed_size(text) == (text.size() + 1) / 2);
      fast.resize((text.size() + 1) / 2);
      REQUIRE(fast == pack(text));
    }
  }

  TEST_CASE("a malformed stream is refused, never read past its end") {
    bool ok = true;
    unpack(std::string(1, '\xe0'), &ok);  // a raw run whose length code is padding... then nothing
    CHECK_FALSE(ok);
    unpack(std::string("\xe3\x41", 2), &ok);  // a run of 4 raw bytes with 1 given
    CHECK_FALSE(ok);
    unpack(std::string("\xf1", 1), &ok);  // padding before the end
    CHECK_FALSE(ok);
    unpack(std::string(1, '\x1f'), &ok);  // padding as the very last code is fine
    CHECK(ok);
    std::mt19937 rng(9);
    for (int trial = 0; trial < 20000; ++trial) {
      const std::string junk = random_text(rng, rng() % 20, "");
      std::string out;
      protocol::unpack_text(reinterpret_cast<const uint8_t*>(junk.data()), junk.size(), &out);
      CHECK(out.size() <= 2 * junk.size());
    }
  }
}

TEST_SUITE("packed text") {
  TEST_CASE("a stored AT record: the ID as it is, the rest packed, half the bytes") {
    const std::string rec = "AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997";
    protocol::RecordForm form(rec);
    CHECK(form.server() == "Goloman");
    const auto s = stored(rec, 7);
    CHECK(protocol::stored_record_code(s.data()) == 7);
    CHECK(protocol::stored_record_id(s.data()) == "kiwi.cs.ucla.edu");
    CHECK(s.size() == 47);  // 83 bytes of text: 1 code, 1 + 16 for the ID, 1 + 6 + 1 + 21 packed
    std::string out;
    REQUIRE(protocol::load_record(s.data(), "Goloman", &out));
    CHECK(out == rec);
    // The same record kept as it is.
    const auto lit = stored(rec, protocol::kLiteralRecord);
    CHECK(protocol::stored_record_id(lit.data()) == "kiwi.cs.ucla.edu");
    out.clear();
    REQUIRE(protocol::load_record(lit.data(), "ignored", &out));
    CHECK(out == rec);
  }

  TEST_CASE("text not laid out as an AT record is kept as it is") {
    for (std::string_view text : {"", "AT", "AT ", "AT S", "AT S +0", "AT S +0 id", "AT S +0 id ", "AT  S +0 id x",
                                  "XX S +0 id +1+2 5", "AT S  id +1+2 5"}) {
      protocol::RecordForm form(text);
      CHECK_MESSAGE(form.server().empty(), text);
      const auto s = stored(text, 3);
      CHECK(protocol::stored_record_code(s.data()) == protocol::kLiteralRecord);
      std::string out;
      REQUIRE(protocol::load_record(s.data(), "S", &out));
      CHECK(out == text);
    }
  }

  TEST_CASE("random records round-trip through their stored form") {
    std::mt19937 rng(21);
    const std::string_view parts[] = {"0123456789+-.", "0123456789+-. ", "abcXYZ.-_", ""};
    for (int trial = 0; trial < 20000; ++trial) {
      auto field = [&](size_t max) {
        std::string f = random_text(rng, 1 + rng() % max, parts[rng() % 4]);
        for (auto& c : f) {
          if (c == ' ' && rng() % 2) c = '7';
        }
        return f;
      };
      std::string server = field(12), diff = field(14), id = field(200), tail = field(40);
      std::string rec = "AT " + server + " " + diff + " " + id + " " + tail;
      protocol::RecordForm form(rec);
      const bool packable = !form.server().empty();
      // The reference split: the first four spaces bound three non-empty fields and a non-empty rest.
      size_t sp[4], from = 0;
      bool four = true;
      for (auto& at : sp) {
        at = rec.find(' ', from);
        if (at == std::string::npos) {
          four = false;
          break;
        }
        from = at + 1;
      }
      const bool laid_out = four && sp[1] > sp[0] + 1 && sp[2] > sp[1] + 1 && sp[3] > sp[2] + 1 && sp[3] + 1 < rec.size();
      REQUIRE(packable == laid_out);
      if (laid_out) {
        CHECK(form.server() == rec.substr(sp[0] + 1, sp[1] - sp[0] - 1));
        CHECK(form.id() == rec.substr(sp[2] + 1, sp[3] - sp[2] - 1));
      }
      const auto s = stored(rec, packable ? 1 : protocol::kLiteralRecord);
      std::string out;
      REQUIRE(protocol::load_record(s.data(), form.server(), &out));
      REQUIRE(out == rec);
      if (server.find(' ') == std::string::npos && diff.find(' ') == std::string::npos &&
          id.find(' ') == std::string::npos) {
        CHECK(packable);
        CHECK(protocol::stored_record_id(s.data()) == id);
      }
    }
  }
}
