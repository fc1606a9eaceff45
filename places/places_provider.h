// The places-provider interface: how a server asks "what is near this point" for WHATSAT, whatever
// answers it (the offline gazetteer, Google's legacy API, Places API (New)).
#pragma once

#include <functional>
#include <string>

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
  virtual ~PlacesProvider() = default;

  // Answers `q`. Called on an event-loop thread; `done` is called exactly once, on that same
  // thread, either synchronously (before nearby returns) or later. `json` is a Places-shaped JSON
  // object (html_attributions, results with at most q.bound entries, status, and error_message on
  // failure) in Google's legacy byte layout, with no trailing newline. Thread-safety depends on the
  // implementation; each one says so.
  virtual void nearby(const PlacesQuery& q, std::function<void(std::string json)> done) = 0;
};

}  // namespace places
