// NoPlaces: a places provider for tests that start a Server and never look near anywhere. Every
// query is answered at once with Google's empty answer.
#pragma once

#include "places/places_provider.h"

namespace testing_places {

struct NoPlaces : places::PlacesProvider {
  void nearby(reactor::EventLoop&, const places::PlacesQuery&, Done done, Wanted = {}) override {
    done("{\"results\" : [], \"status\" : \"ZERO_RESULTS\"}");
  }
};

}  // namespace testing_places
