// Packed text: a lossless encoding, two characters per byte, for text made mostly of the characters of
// the protocol's numbers ('0'..'9', '+', '-', '.') and single spaces, such as an AT record's time
// difference, location and time. Any other byte still round-trips, in a run of raw bytes (1 byte
// plus 1 per 16 raw bytes more than it takes unpacked). The location table stores records this way.
//
// The stream is 4-bit codes, high half of each byte first: 0..9 a digit, 10 '+', 11 '-', 12 '.',
// 13 ' ', 14 a raw run (the next code is its length less one, 1..16 bytes, then each byte as two
// codes), 15 padding (only as the last code of an odd count). Pure functions, no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace protocol {

// The number of bytes pack_text writes for `text`.
size_t packed_size(std::string_view text);

// Writes packed_size(text) bytes to `out`.
void pack_text(std::string_view text, uint8_t* out);

// The fast path for text whose every byte has a code of its own (no raw run), such as the numbers of
// an AT record: writes (n + 1) / 2 bytes to `out`, the same bytes pack_text writes, and returns true;
// returns false (what was written is then garbage) when some byte has no code. Reads text[0, n) and,
// where that is faster, bytes up to text + readable (readable >= n: the caller vouches for them);
// may write up to 8 bytes past out + (n + 1) / 2. SSE2 where there is SSE2.
bool pack_all_coded(const char* text, size_t n, size_t readable, uint8_t* out);

// Appends the text `bytes` packs to *out; false (with *out holding what decoded before the fault)
// when `bytes` is not a stream pack_text writes.
bool unpack_text(const uint8_t* bytes, size_t size, std::string* out);

}  // namespace protocol
