// The places-provider interface: how a server asks "what is near this point" for WHATSAT, whatever
// answers it (the offline gazetteer, Google's legacy API, Places API (New)).
#pragma once

#include <functional>
#include <string>

namespace reactor {
class EventLoop;
}  // namespace reactor

namespace places {

// One Nearby Search request.
struct PlacesQuery {
  double lat;       // degrees, [-90, 90]
  double lng;       // degrees, [-180, 180]
  double radius_m;  // metres, (0, 50000] for WHATSAT
  int bound;        // most results wanted, 1..20 for WHATSAT
};

// A source of Nearby Search answers.
class PlacesProvider {
 public:
  using Done = std::function<void(std::string json)>;
  // Whether the answer is still wanted (false once the client that asked has left). Called on the
  // thread of the loop that asked, any number of times.
  using Wanted = std::function<bool()>;

  virtual ~PlacesProvider() = default;

  // Answers `q`. Called on the thread of `loop` (an event loop that is running); `done` is called
  // exactly once, on that same thread, either synchronously (before nearby returns) or later.
  // `json` is a Places-shaped JSON object (html_attributions, results with at most q.bound entries,
  // status, and error_message on failure) in Google's legacy byte layout, with no trailing
  // newline. A provider that waits may skip work not yet begun (an upstream call still queued, a
  // retry) for an answer no one wants any more, by `wanted` (empty: always wanted); `done` is
  // still called. Thread-safety depends on the implementation; each one says so.
  virtual void nearby(reactor::EventLoop& loop, const PlacesQuery& q, Done done, Wanted wanted = {}) = 0;

  // A provider that can answer at once, without waiting for anything, appends to `out` the JSON
  // nearby() would pass to `done`, already in reply form (no leading or trailing newline, never
  // two newlines in a row), and returns true; otherwise it appends nothing and returns false (the
  // default). Lets a caller write the answer straight into its output with no copy. Same threads
  // as nearby().
  virtual bool answer_now(const PlacesQuery&, std::string&) const { return false; }

  // Called on the thread of `loop` before that loop stops for good: answers still pending there are
  // completed (with an UNKNOWN_ERROR reply) and whatever the provider holds for the loop
  // (connections, timers) is released. nearby() must not be called for `loop` afterwards.
  virtual void stop_loop(reactor::EventLoop&) {}
};

}  // namespace places
