// Fuzz harness: the location table's stored form of records (protocol/packed_record.h) and the packed
// text under it (protocol/packed_text.h). Properties: any text stored (packed when it is laid out as
// an AT record, as it is otherwise) loads back byte for byte with the ID in place; packed text
// round-trips and the fast packer agrees with the general one; any bytes given to the unpacker are
// refused or decoded without reading past them (ASan watches).
// Dictionary: command.dict
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/packed_record.h"
#include "protocol/packed_text.h"
#include "protocol/reply.h"
#include "test/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  protocol::RecordForm form(text);
  std::string stored;
  form.store(form.server().empty() ? protocol::kLiteralRecord : 3, &stored);
  const auto* s = reinterpret_cast<const uint8_t*>(stored.data());
  FUZZ_CHECK(protocol::stored_record_bytes(s) == stored.size());
  if (!form.server().empty()) FUZZ_CHECK(protocol::stored_record_id(s) == form.id());
  std::string back;
  FUZZ_CHECK(protocol::load_record(s, form.server(), &back));
  FUZZ_CHECK(back == text);

  std::string packed(protocol::packed_size(text), '\0');
  protocol::pack_text(text, reinterpret_cast<uint8_t*>(packed.data()));
  std::string unpacked;
  FUZZ_CHECK(protocol::unpack_text(reinterpret_cast<const uint8_t*>(packed.data()), packed.size(), &unpacked));
  FUZZ_CHECK(unpacked == text);
  std::string fast((size + 1) / 2 + 8, '\0');
  if (protocol::pack_all_coded(text.data(), size, size, reinterpret_cast<uint8_t*>(fast.data()))) {
    fast.resize((size + 1) / 2);
    FUZZ_CHECK(fast == packed);
  }

  // The input as a packed stream, in a buffer of exactly its size.
  std::unique_ptr<uint8_t[]> exact(new uint8_t[size ? size : 1]);
  if (size) std::memcpy(exact.get(), data, size);
  std::string junk;
  protocol::unpack_text(exact.get(), size, &junk);
  FUZZ_CHECK(junk.size() <= 2 * size);
  return 0;
}
