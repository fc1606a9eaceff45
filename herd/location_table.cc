// LocationTable implementation: per-shard linear-probing tables of tagged record addresses, records
// packed into per-shard arena blocks with compaction, tombstones for evictions, sampled
// least-recently-stored eviction, and the resumable scan.
#include "herd/location_table.h"

#include "protocol/fields.h"
#include "protocol/packed_record.h"
#include "protocol/reply.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace herd {

namespace {

static_assert(sizeof(void*) == 8, "slots keep a 48-bit address and a 16-bit tag in 64 bits");
constexpr unsigned kAddressBits = 48;
constexpr uint64_t kAddressMask = (uint64_t{1} << kAddressBits) - 1;

// malloc, refusing (as a failure) an address the 48-bit slot field cannot hold. Linux gives user
// space such addresses unless a program maps above 2^47 on purpose, which this one does not.
void* allocate_block(size_t bytes) {
  void* mem = std::malloc(bytes);
  if (mem && reinterpret_cast<uintptr_t>(mem) >> kAddressBits != 0) {
    std::free(mem);
    mem = nullptr;
  }
  return mem;
}

constexpr size_t round4(size_t n) { return (n + 3) & ~size_t{3}; }

}  // namespace

// The server names of stored records, as one-byte codes (protocol/packed_record.h): a name gets
// the next code the first time it is stored and keeps it. At most kLiteralRecord names of at most
// kMaxNameBytes each; records of other servers are stored as they are. code() is thread-safe; name()
// is lock-free for a code code() has returned (a published name never changes).
class LocationTable::Names {
 public:
  static constexpr size_t kMaxNameBytes = 64;

  uint8_t code(std::string_view name) {
    if (name.empty() || name.size() > kMaxNameBytes) return protocol::kLiteralRecord;
    // Published names first, without the lock (inline: every record stored asks); then again
    // under it, before adding one.
    const size_t n = count_.load(std::memory_order_acquire);
    if (size_t i = find(name, n); i < n) return static_cast<uint8_t>(i);
    return add(name);
  }

  std::string_view name(uint8_t code) const {
    return code == protocol::kLiteralRecord ? std::string_view{} : std::string_view(names_[code]);
  }

 private:
  // code() for a name not published when it looked: under the lock, found or added.
  __attribute__((noinline)) uint8_t add(std::string_view name) {
    std::lock_guard lock(mu_);
    const size_t n = count_.load(std::memory_order_relaxed);
    if (size_t i = find(name, n); i < n) return static_cast<uint8_t>(i);
    if (n == protocol::kLiteralRecord) return protocol::kLiteralRecord;
    names_[n].assign(name);  // may throw std::bad_alloc: nothing published
    count_.store(n + 1, std::memory_order_release);
    return static_cast<uint8_t>(n);
  }

  // The index of `name` among the first n names, or n.
  size_t find(std::string_view name, size_t n) const {
    size_t i = 0;
    while (i < n && names_[i] != name) ++i;
    return i;
  }

  std::mutex mu_;
  std::atomic<size_t> count_{0};
  std::string names_[protocol::kLiteralRecord];
};

// A stored record: a 24-byte head of 32-bit words (so records pack at 4-byte alignment), then the
// record in its stored form (protocol/packed_record.h: the ID as it is, the rest packed). The
// location is not stored apart, nor the ID's hash, which a regrowth computes again.
struct LocationTable::Record {
  static constexpr uint32_t kAlone = uint32_t{1} << 31;  // in `length`: a heap block of its own
  // The time packs into 64 bits as sec << 30 | nsec below this many seconds (the year 2514);
  // a later time is marked kTimeInText and read from the record's last field when needed.
  static constexpr int64_t kPackedSecLimit = int64_t{1} << 34;
  static constexpr uint64_t kTimeInText = ~uint64_t{0};

  uint32_t length;    // bytes of the record's text, | kAlone
  uint32_t touched;   // the shard's clock when it was stored: older ones are evicted first
  uint32_t time_[2];  // the packed time (see above); low, high word
  uint32_t stamp_[2]; // the observer's stamp when it was stored (0: none); low, high word
  uint8_t bytes[4];   // the stored form from here

  static constexpr size_t kHead = 24;
  static size_t footprint(size_t stored) { return kHead + round4(stored); }

  size_t size() const { return length & ~kAlone; }
  size_t footprint() const { return footprint(protocol::stored_record_bytes(bytes)); }
  bool alone() const { return (length & kAlone) != 0; }
  std::string_view id() const { return protocol::stored_record_id(bytes); }
  // Appends the record's text to *out.
  void append_to(const Names& names, std::string* out) const {
    protocol::load_record(bytes, names.name(protocol::stored_record_code(bytes)), out);
  }
  protocol::Timestamp time(const Names& names) const {
    const uint64_t packed = uint64_t{time_[1]} << 32 | time_[0];
    if (packed != kTimeInText) {
      return {static_cast<int64_t>(packed >> 30), static_cast<int32_t>(packed & ((1u << 30) - 1))};
    }
    std::string text;
    append_to(names, &text);
    return protocol::at_record_time(text).value_or(protocol::Timestamp{});
  }
  uint64_t stamp() const { return uint64_t{stamp_[1]} << 32 | stamp_[0]; }
  void set_stamp(uint64_t s) {
    stamp_[0] = static_cast<uint32_t>(s);
    stamp_[1] = static_cast<uint32_t>(s >> 32);
  }
  void fill(protocol::Timestamp t, size_t text_length, std::string_view stored, bool own_block) {
    length = static_cast<uint32_t>(text_length) | (own_block ? kAlone : 0);
    touched = 0;
    const uint64_t packed = t.sec < kPackedSecLimit
                                ? static_cast<uint64_t>(t.sec) << 30 | static_cast<uint64_t>(t.nsec)
                                : kTimeInText;
    time_[0] = static_cast<uint32_t>(packed);
    time_[1] = static_cast<uint32_t>(packed >> 32);
    set_stamp(0);
    std::memcpy(bytes, stored.data(), stored.size());
  }
};

// Where a shard's records live. Small records are bump-allocated from blocks the arena owns; big ones
// (kAloneBytes or more) get a block each. Freeing a small record only counts its bytes as dead: the
// shard compacts (see Shard::compact) when dead bytes reach half of the live ones. Guarded by the
// shard's mutex.
class LocationTable::Arena {
 public:
  // Smallest and largest blocks taken for small records; a new block is 1/8 of what the arena holds
  // in between, so the unused tail of the current block stays a small share of the memory.
  static constexpr size_t kMinBlock = 1024;
  static constexpr size_t kMaxBlock = 16 * 1024;
  // Dead bytes below this are never worth a compaction.
  static constexpr size_t kMinDead = 4096;

  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena() {
    for (char* b : blocks_) std::free(b);
  }

  // Room for a record whose stored form is `stored` bytes, 4-byte aligned; `*alone` tells whether
  // it is a block of its own. Throws std::bad_alloc (nothing changed) when no memory can be had.
  void* allocate(size_t stored, bool* alone) {
    const size_t bytes = LocationTable::Record::footprint(stored);
    *alone = stored >= LocationTable::kAloneBytes;
    if (*alone) {
      void* mem = allocate_block(bytes);
      if (!mem) throw std::bad_alloc();
      held_alone_ += bytes;
      return mem;
    }
    if (bytes > left_) {
      size_t size = std::clamp(held() / 8, kMinBlock, kMaxBlock);
      size = std::max(size, bytes);
      char* block = static_cast<char*>(allocate_block(size));
      if (!block) throw std::bad_alloc();
      try {
        blocks_.push_back(block);
      } catch (...) {
        std::free(block);
        throw;
      }
      held_blocks_ += size;
      next_ = block;
      left_ = size;
    }
    void* at = next_;
    next_ += bytes;
    left_ -= bytes;
    live_ += bytes;
    return at;
  }

  // `r` is no longer stored: a block of its own is freed, other bytes count as dead.
  void release(LocationTable::Record* r) {
    const size_t bytes = r->footprint();
    if (r->alone()) {
      held_alone_ -= bytes;
      std::free(r);
      return;
    }
    live_ -= bytes;
    dead_ += bytes;
  }

  bool wants_compaction() const { return dead_ >= kMinDead && dead_ * 2 >= live_; }

  // Moves every small record `each` yields into one new block of exactly the live bytes, then frees
  // the old blocks. `each(f)` must call f(Record*&) for every stored record (and may let it replace
  // the pointer). Does nothing when that block cannot be had (the arena stays as it was).
  template <typename ForEach>
  void compact(ForEach each) {
    char* block = nullptr;
    if (live_ > 0) {
      block = static_cast<char*>(allocate_block(live_));
      if (!block) return;
    }
    std::vector<char*> keep;
    try {
      if (block) keep.push_back(block);
    } catch (...) {
      std::free(block);
      return;
    }
    char* to = block;
    each([&](LocationTable::Record*& r) {
      if (r->alone()) return;
      const size_t bytes = r->footprint();
      std::memcpy(to, r, bytes);
      r = reinterpret_cast<LocationTable::Record*>(to);
      to += bytes;
    });
    for (char* b : blocks_) std::free(b);
    blocks_.swap(keep);
    held_blocks_ = live_;
    dead_ = 0;
    next_ = to;
    left_ = 0;
  }

  // Bytes taken from the allocator (blocks and records of their own).
  size_t held() const { return held_blocks_ + held_alone_; }
  size_t live() const { return live_; }
  size_t dead() const { return dead_; }

 private:
  std::vector<char*> blocks_;
  char* next_ = nullptr;   // where the next small record goes in the current block
  size_t left_ = 0;        // bytes left there
  size_t held_blocks_ = 0;  // bytes of blocks_
  size_t held_alone_ = 0;   // bytes of the records in blocks of their own
  size_t live_ = 0;        // footprints of the small records stored
  size_t dead_ = 0;        // footprints of small records released since the last compaction
};

struct LocationTable::Shard {
  // A slot: 0 empty, 1 a tombstone (an evicted record's slot), otherwise a record's address in the low
  // 48 bits and the low 16 bits of its ID's hash above them.
  using Slot = uint64_t;
  static constexpr Slot kEmpty = 0;
  static constexpr Slot kTombstone = 1;
  static constexpr size_t kNone = static_cast<size_t>(-1);

  mutable std::mutex mu;
  std::vector<Slot> slots;  // size is zero or a power of two
  Arena arena;

  Shard() = default;
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;
  // The arena frees its blocks; records in blocks of their own are freed here.
  ~Shard() {
    for (Slot s : slots) {
      if (holds_record(s) && record_of(s)->alone()) std::free(record_of(s));
    }
  }
  size_t used = 0;
  size_t tombstones = 0;
  uint64_t generation = 0;  // bumped whenever a rehash moves the records to new slots
  uint32_t clock = 0;       // counts stores; a record's `touched` is the count at its store
  uint64_t rng = 0;         // eviction sampling (xorshift), seeded per shard

  static Record* record_of(Slot s) { return reinterpret_cast<Record*>(s & kAddressMask); }
  static bool holds_record(Slot s) { return s > kTombstone; }
  // Bits of the hash: 0..15 are the slot's tag, 16..55 choose the slot, 56..63 the shard.
  static uint16_t tag_of(uint64_t h) { return static_cast<uint16_t>(h); }
  static size_t home(uint64_t h) { return static_cast<size_t>(h >> 16); }
  static Slot make_slot(Record* r, uint16_t tag) {
    return reinterpret_cast<uintptr_t>(r) | uint64_t{tag} << kAddressBits;
  }

  // The index of the slot holding `id`, or else of the slot where it would go (the first tombstone
  // on its probe path, or the empty slot that ends it). *probe (if given) is set to the number of
  // slots looked at past the first.
  size_t find(uint64_t h, std::string_view id, size_t* probe = nullptr) const {
    const size_t mask = slots.size() - 1;
    const uint64_t tag = tag_of(h);
    size_t n = 0;
    size_t reuse = kNone;
    for (size_t i = home(h) & mask;; i = (i + 1) & mask, ++n) {
      const Slot s = slots[i];
      if (s == kEmpty) {
        if (probe) *probe = n;
        return reuse == kNone ? i : reuse;
      }
      if (s == kTombstone) {
        if (reuse == kNone) reuse = i;
      } else if (s >> kAddressBits == tag) {
        if (record_of(s)->id() == id) {
          if (probe) *probe = n;
          return i;
        }
      }
      if (n > slots.size()) {  // all tombstones and records: cannot happen below the load bound
        if (probe) *probe = n;
        return reuse;
      }
    }
  }

  // Rehashes into `size` slots (tombstones dropped), hashing each ID again with `key`: records move,
  // so scans in progress restart.
  void grow(size_t size, const SipKey& key) {
    std::vector<Slot> fresh(size);  // may throw: nothing changed yet
    ++generation;
    tombstones = 0;
    const size_t mask = size - 1;
    for (Slot s : slots) {
      if (!holds_record(s)) continue;
      size_t i = home(siphash13(key, record_of(s)->id())) & mask;
      while (fresh[i] != kEmpty) i = (i + 1) & mask;
      fresh[i] = s;
    }
    slots.swap(fresh);
  }

  // Leaves a tombstone in slot i: no other record moves, so a scan in progress misses none.
  void erase_at(size_t i) {
    slots[i] = kTombstone;
    ++tombstones;
  }

  // Copies the live records together (see Arena::compact); slots keep their places and tags.
  void compact() {
    arena.compact([this](auto&& move) {
      for (Slot& s : slots) {
        if (!holds_record(s)) continue;
        Record* r = record_of(s);
        move(r);
        s = make_slot(r, static_cast<uint16_t>(s >> kAddressBits));
      }
    });
  }

  uint64_t next_random() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }

  // The slot of the least recently stored record among a sample (among all, in a small shard),
  // never `keep`; kNone when there is no other record.
  size_t pick_victim(const Record* keep) {
    size_t best = kNone;
    uint32_t best_age = 0;
    auto consider = [&](size_t i) {
      if (!holds_record(slots[i])) return false;
      const Record* r = record_of(slots[i]);
      if (r == keep) return false;
      uint32_t age = clock - r->touched;  // unsigned: right across the clock's wrap
      if (best == kNone || age > best_age) {
        best = i;
        best_age = age;
      }
      return true;
    };
    if (slots.size() > 4 * kEvictionSample) {
      size_t mask = slots.size() - 1, taken = 0;
      for (size_t tries = 0; taken < kEvictionSample && tries < 16 * kEvictionSample; ++tries) {
        if (consider(next_random() & mask)) ++taken;
      }
      if (best != kNone) return best;
    }
    for (size_t i = 0; i < slots.size(); ++i) consider(i);
    return best;
  }

  // A new record in the arena, filled; throws std::bad_alloc with nothing changed.
  Record* make(protocol::Timestamp time, size_t text_length, std::string_view stored) {
    bool alone = false;
    auto* r = static_cast<Record*>(arena.allocate(stored.size(), &alone));
    r->fill(time, text_length, stored, alone);
    return r;
  }
};

size_t LocationTable::charge(size_t record_length) {
  static_assert(offsetof(Record, bytes) == Record::kHead);
  static_assert(alignof(Record) == 4, "records pack at 4-byte alignment");
  return Record::footprint(record_length);
}

LocationTable::LocationTable(size_t max_clients, size_t max_bytes, SipKey key, bool packed)
    : key_(key),
      packed_(packed),
      max_records_(max_clients),
      max_bytes_(max_bytes),
      shards_(new Shard[kShards]),
      names_(new Names) {
  for (size_t i = 0; i < kShards; ++i) shards_[i].rng = (key.k0 ^ (0x9e3779b97f4a7c15ull * (i + 1))) | 1;
}

LocationTable::~LocationTable() = default;

uint64_t LocationTable::hash(std::string_view id) const { return siphash13(key_, id); }

LocationTable::Shard& LocationTable::shard_for(uint64_t h) const {
  return shards_[h >> 56 & (kShards - 1)];
}

bool LocationTable::offer(std::string_view client_id, protocol::Timestamp time,
                          std::string_view record, Source source, std::string* stored, Observer* observer) {
  return offer(client_id, time, protocol::RecordForm(record), source, stored, observer);
}

bool LocationTable::offer(std::string_view client_id, protocol::Timestamp time,
                          const protocol::RecordForm& form, Source source, std::string* stored,
                          Observer* observer) {
  const std::string_view record = form.record();
  // The stored form is written before the lock: under it there is only a copy.
  thread_local std::string scratch;
  if (packed_) {
    const std::string_view id = form.server().empty() ? protocol::at_record_id(record) : form.id();
    // (A peer's record comes with the very view of its ID that the parse found: nothing to compare.)
    const bool same_view = id.data() == client_id.data() && id.size() == client_id.size();
    if (client_id.empty() || !(same_view || id == client_id)) return false;
    form.store(names_->code(form.server()), &scratch);
  } else {
    if (client_id.empty() || protocol::at_record_id(record) != client_id) return false;
    protocol::store_record_as_is(record, &scratch);
  }
  const std::string_view packed = scratch;
  const uint64_t h = hash(client_id);
  Shard& shard = shard_for(h);
  uint64_t evicted_total = 0;
  bool won = false;
  {
    std::lock_guard lock(shard.mu);
    if ((shard.used + shard.tombstones + 1) * 4 > shard.slots.size() * 3) {
      // Full of records: twice the slots. Mostly tombstones (evictions): the same size, cleared.
      size_t size = shard.slots.empty() ? 16 : shard.slots.size();
      if ((shard.used + 1) * 2 > size) size *= 2;
      shard.grow(size, key_);
    }
    size_t probe = 0;
    size_t i = shard.find(h, client_id, &probe);
    Record* fresh = nullptr;
    if (Shard::holds_record(shard.slots[i])) {
      Record* cur = Shard::record_of(shard.slots[i]);
      const protocol::Timestamp cur_time = cur->time(*names_);
      bool newer = time > cur_time;
      if (!newer && source == Source::kPeer && time == cur_time) {
        thread_local std::string text;
        text.clear();
        cur->append_to(*names_, &text);
        newer = record > text;
      }
      if (!newer) {
        if (stored) cur->append_to(*names_, stored);
        return false;
      }
      // The same room (a client's next record nearly always needs it): written over in place, in
      // lines the compare has just read, leaving nothing dead for a compaction to copy.
      const bool in_place = !cur->alone() && cur->footprint() == Record::footprint(packed.size());
      fresh = in_place ? cur : shard.make(time, record.size(), packed);  // may throw: nothing changed yet
      const size_t now_charged = charge(record.size()), was_charged = charge(cur->size());
      if (now_charged != was_charged) {  // rarely: a client's records are nearly always one size
        if (now_charged > was_charged) {
          total_bytes_.fetch_add(now_charged - was_charged, std::memory_order_relaxed);
        } else {
          total_bytes_.fetch_sub(was_charged - now_charged, std::memory_order_relaxed);
        }
      }
      if (in_place) {
        cur->fill(time, record.size(), packed, false);
      } else {
        shard.arena.release(cur);
        shard.slots[i] = Shard::make_slot(fresh, Shard::tag_of(h));
      }
    } else {
      if (probe > kMaxProbe && shard.slots.size() < (shard.used + 1) * 64) {
        // A run this long is bad luck (the key is secret): spread it over twice the slots.
        shard.grow(shard.slots.size() * 2, key_);
        i = shard.find(h, client_id);
      }
      fresh = shard.make(time, record.size(), packed);  // may throw: nothing changed but a regrowth
      if (shard.slots[i] == Shard::kTombstone) --shard.tombstones;
      shard.slots[i] = Shard::make_slot(fresh, Shard::tag_of(h));
      ++shard.used;
      total_records_.fetch_add(1, std::memory_order_relaxed);
      total_bytes_.fetch_add(charge(record.size()), std::memory_order_relaxed);
    }
    won = true;
    if (observer) fresh->set_stamp(observer->on_stored(record));
    fresh->touched = ++shard.clock;
    while ((total_records_.load(std::memory_order_relaxed) > max_records_ ||
            total_bytes_.load(std::memory_order_relaxed) > max_bytes_) &&
           shard.used > 1) {
      size_t v = shard.pick_victim(fresh);
      if (v == Shard::kNone) break;
      Record* gone = Shard::record_of(shard.slots[v]);
      const size_t gone_charged = charge(gone->size());
      total_bytes_.fetch_sub(gone_charged, std::memory_order_relaxed);
      total_records_.fetch_sub(1, std::memory_order_relaxed);
      --shard.used;
      shard.erase_at(v);
      shard.arena.release(gone);
      ++evicted_total;
    }
    if (shard.arena.wants_compaction()) shard.compact();
  }
  if (evicted_total) evictions_.fetch_add(evicted_total, std::memory_order_relaxed);
  return won;
}

bool LocationTable::lookup(std::string_view client_id, std::string* record,
                           protocol::Location* where) const {
  uint64_t h = hash(client_id);
  Shard& shard = shard_for(h);
  size_t start = record->size();
  {
    std::lock_guard lock(shard.mu);
    if (shard.slots.empty()) return false;
    const Shard::Slot slot = shard.slots[shard.find(h, client_id)];
    if (!Shard::holds_record(slot)) return false;
    Shard::record_of(slot)->append_to(*names_, record);
  }
  if (where) {
    std::string_view fields[6];
    std::string_view copy = std::string_view(*record).substr(start);
    if (protocol::split_fields(copy, fields, 6) == 6) {
      if (auto loc = protocol::parse_location(fields[4])) *where = *loc;
    }
  }
  return true;
}

bool LocationTable::holds(std::string_view client_id, std::string_view record) const {
  uint64_t h = hash(client_id);
  Shard& shard = shard_for(h);
  std::lock_guard lock(shard.mu);
  if (shard.slots.empty()) return false;
  const Shard::Slot slot = shard.slots[shard.find(h, client_id)];
  if (!Shard::holds_record(slot)) return false;
  const Record* r = Shard::record_of(slot);
  if (r->size() != record.size()) return false;
  thread_local std::string text;
  text.clear();
  r->append_to(*names_, &text);
  return text == record;
}

size_t LocationTable::scan(ScanPosition* pos, std::string* out, size_t max_bytes, uint64_t stamped_up_to) const {
  size_t count = 0;
  const size_t start = out->size();
  while (!pos->done && out->size() - start < max_bytes) {
    if (pos->shard >= kShards) {
      pos->done = true;
      break;
    }
    const Shard& shard = shards_[pos->shard];
    std::lock_guard lock(shard.mu);
    if (pos->slot == 0) {
      pos->generation = shard.generation;
    } else if (pos->generation != shard.generation) {
      // Rehashed since the scan entered it: records may have moved to slots already passed.
      pos->slot = 0;
      pos->generation = shard.generation;
    }
    const size_t end = std::min(shard.slots.size(), pos->slot + kScanSlotsPerLock);
    for (; pos->slot < end; ++pos->slot) {
      const Shard::Slot s = shard.slots[pos->slot];
      if (!Shard::holds_record(s)) continue;
      const Record* r = Shard::record_of(s);
      if (r->stamp() > stamped_up_to) continue;
      r->append_to(*names_, out);
      out->push_back('\n');
      ++count;
      if (out->size() - start >= max_bytes) {
        ++pos->slot;
        break;
      }
    }
    if (pos->slot >= shard.slots.size()) {
      ++pos->shard;
      pos->slot = 0;
    }
  }
  if (pos->shard >= kShards) pos->done = true;
  return count;
}

size_t LocationTable::size() const {
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].used;
  }
  return n;
}

size_t LocationTable::memory_bytes() const {
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].slots.size() * sizeof(Shard::Slot) + shards_[i].arena.held();
  }
  return n;
}

}  // namespace herd
