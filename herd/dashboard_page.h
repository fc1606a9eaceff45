// The admin dashboard (GET / on the admin port): one self-contained HTML page with its CSS and
// JavaScript, compiled into the binary, no CDN. It polls /v1/dashboard of every server of the herd
// (their admin URLs come from the first answer) once a second and draws: the topology with each
// link's live state, per-server update and error rates over the last five minutes, and the last
// client locations on a world map (Natural Earth land outlines from /world.json, see the README's
// data credits). A token given as `#token=...` in the page's URL is passed on as `?token=`.
//
// Threads: constant data; any thread.
#pragma once

namespace herd {

extern const char* const kDashboardHtml;

}  // namespace herd
