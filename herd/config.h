// Config: the herd's configuration (servers, links, limits, places, logging) loaded from YAML and
// validated. Every error names the file, the key and the value; questionable but workable settings
// (unknown keys, a server with no links) become warnings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herd {

struct ServerConfig {
  std::string name;
  std::string host = "127.0.0.1";  // the address neighbours dial (and the bind address without listen)
  uint16_t port = 0;       // clients
  uint16_t peer_port = 0;  // other servers of the herd
  std::string listen;              // bind address for the client and peer ports; empty: host
  uint16_t admin_port = 0;         // the admin HTTP endpoint; 0: none
  std::string admin_listen = "127.0.0.1";  // its bind address (it shows client locations)
};

// Every bound the server enforces, in one place.
struct Limits {
  size_t max_line = 64 * 1024;                 // bytes in one command line
  size_t max_connections = 20000;              // open client connections per server
  size_t max_pending_replies = 1024;           // replies queued per client before it stops being read
  size_t max_output_bytes = 1024 * 1024;       // unsent reply bytes per client before it stops being read
  size_t peer_backlog_bytes = 16 * 1024 * 1024; // the backlog of stored records shared by the peer links
                                                // (catch-up window; a neighbour further behind gets a full transfer)
  size_t log_backlog_bytes = 16 * 1024 * 1024; // log bytes per loop waiting for the disk before entries are dropped
  // The location table: past either bound the least recently updated clients are evicted.
  size_t max_clients = 4000000;                // clients held
  size_t max_table_bytes = size_t{1} << 30;    // bytes of their records (header included)
  size_t max_id_bytes = 1024;                  // a longer client ID is refused
  int64_t max_clock_skew = 86400;              // seconds a report's time may be ahead of ours; 0 = off
  size_t max_buffered_bytes = 256u << 20;      // input and output buffered over all connections
  int64_t line_timeout_ms = 10000;             // an incomplete line held longer closes the connection
  int64_t idle_timeout_ms = 0;                 // a client silent this long is closed; 0 = off
  int64_t write_timeout_ms = 30000;            // a client that takes no output this long is closed
  int64_t peer_hello_timeout_ms = 5000;        // an inbound peer that has not said hello by then is closed
  // A peer connection (either way) whose sent bytes stay unacknowledged this long (TCP_USER_TIMEOUT), or
  // that is silent and answers no keepalive probe within it, is closed: a neighbour behind a path that
  // went dark is noticed even while records are in flight to it (keepalive alone waits for an idle link).
  int64_t peer_timeout_ms = 60000;
};

struct PlacesConfig {
  std::string provider = "offline";  // offline | google | google-new
  std::string gazetteer;             // offline data file; empty: the one built beside the server
  // google and google-new only:
  std::string key_env = "GOOGLE_API_KEY";  // the environment variable holding the API key
  std::string endpoint;              // base URL; empty: the provider's default (default_endpoint())
  std::string ca_file;               // PEM CAs trusted for the endpoint; empty: the system store
  int timeout_ms = 10000;            // per WHATSAT, retries included
  int max_inflight = 256;            // upstream requests in flight per server

  // https://maps.googleapis.com (google) or https://places.googleapis.com (google-new).
  std::string default_endpoint() const;
};

// Mutually authenticated TLS on the peer links. The paths may contain {name} (the server's name) and
// are relative to the config file's directory.
struct PeerTlsConfig {
  std::string ca_file;    // the herd's CA: peers' certificates must be signed by it
  std::string cert_file;  // this server's certificate, naming it (subjectAltName DNS or CN)
  std::string key_file;   // its private key
};

// How a server's loops take connections from the kernel (config `accept`).
enum class AcceptMode {
  kExclusive,  // one listening socket per port, watched by every loop with EPOLLEXCLUSIVE; the loop
               // that wakes accepts and hands client connections round-robin to the loops
  kReusePort,  // one SO_REUSEPORT socket per port and loop; the kernel's hash picks the loop, which
               // keeps what it accepts
};
const char* accept_mode_name(AcceptMode mode);  // "exclusive" | "reuseport"

struct Config {
  std::string source;     // the file it came from, for messages
  std::string base_dir;   // relative paths in the file are relative to this directory
  int threads = 0;        // event loops; 0 = one per core
  AcceptMode accept = AcceptMode::kExclusive;
  std::string log_dir = "logs";
  std::string log_level = "io";      // io | events | warnings
  uint64_t log_max_bytes = 256ull << 20;  // rotate NAME.log past this size; 0: no limit
  int log_keep = 5;                  // rotated logs kept: NAME.log.1 … NAME.log.<log_keep>
  bool strict = false;               // unknown keys are errors, not warnings
  bool packed_records = true;        // table_records: packed (the table packs records) | plain
  int shutdown_timeout_ms = 5000;    // SIGTERM: longest wait for replies and peer links to send what they owe
  std::string admin_token_env;  // names the environment variable holding the admin bearer token
  PlacesConfig places;
  std::vector<ServerConfig> servers;
  std::vector<std::pair<std::string, std::string>> links;
  Limits limits;
  int peer_backoff_initial_ms = 500;
  int peer_backoff_max_ms = 5000;
  std::optional<PeerTlsConfig> peer_tls;  // absent: plaintext peer links
  std::string data_dir;                   // empty: memory only; else each server keeps <data_dir>/<name>/
  std::string fsync = "everysec";         // always | everysec | no (with a data_dir)
  size_t compact_bytes = 64 * 1024 * 1024;  // record log size that starts a background rewrite

  // The number of event loops a server runs: `threads`, or one per core when it is 0.
  int loop_count() const;

  // The longest line a neighbour may send on a peer link: an AT record made from a client line of
  // limits.max_line bytes (its header and time difference added) followed by a seen= set naming
  // every server. Whatever a server accepts from a client is therefore deliverable to every
  // neighbour, whatever its ID, location or time fields hold.
  size_t peer_max_line() const;

  const ServerConfig* find(std::string_view name) const;
  // The position of server `name` in `servers`, or -1.
  int index_of(std::string_view name) const;
  // The neighbours of `name`, in the order the links list them.
  std::vector<const ServerConfig*> neighbours(std::string_view name) const;
  // `path` made absolute against base_dir when relative.
  std::string resolve_path(const std::string& path) const;
  // A peer_tls path for `server`: {name} replaced, then resolved as above.
  std::string peer_tls_path(const std::string& path, std::string_view server) const;
};

// Parses and validates `yaml`. `source` names it in messages. With `strict` (or `strict: true` in
// the file) unknown keys are errors. On error returns nullopt and sets
// *error to one line naming the source, key and value; warnings go to *warnings.
std::optional<Config> parse_config(const std::string& yaml, const std::string& source,
                                   std::string* error, std::vector<std::string>* warnings,
                                   bool strict = false);

// The most load_config reads: a config is a few KiB; anything near this is the wrong file.
constexpr size_t kMaxConfigBytes = 4 << 20;

// Reads `path` (at most kMaxConfigBytes) and parses it as above; base_dir is the file's directory.
std::optional<Config> load_config(const std::string& path, std::string* error,
                                  std::vector<std::string>* warnings, bool strict = false);

}  // namespace herd
