// HTML report of near-duplicate groups (report.hpp).
#include "report.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "common.hpp"
#include "imgsim/image/image.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "progress.hpp"

namespace fs = std::filesystem;

namespace imgsim::cli {

namespace {

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// The deepest folder holding every path ("" when they share none but the root).
std::string common_folder(const std::vector<std::string>& paths) {
  if (paths.empty()) return "";
  fs::path common = fs::path(paths[0]).parent_path();
  for (const std::string& p : paths) {
    const fs::path dir = fs::path(p).parent_path();
    fs::path shared;
    auto a = common.begin(), b = dir.begin();
    for (; a != common.end() && b != dir.end() && *a == *b; ++a, ++b) shared /= *a;
    common = shared;
    if (common.empty()) break;
  }
  const std::string s = common.string();
  return s == "/" ? "" : s;
}

// `path` relative to `folder` when it lies inside it.
std::string shown_name(const std::string& path, const std::string& folder) {
  if (!folder.empty() && path.size() > folder.size() + 1 &&
      path.compare(0, folder.size(), folder) == 0 && path[folder.size()] == '/')
    return path.substr(folder.size() + 1);
  return path;
}

const char* kStyle = R"css(
*{box-sizing:border-box}
body{margin:0;background:#f1f3f5;color:#1f2328;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{background:#fff;border-bottom:1px solid #d0d7de;padding:18px 28px 14px}
h1{font-size:21px;margin:0 0 12px;font-weight:600}
.stats{display:flex;flex-wrap:wrap;gap:10px 36px;margin:0 0 12px}
.stat b{display:block;font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.stat span{color:#656d76;font-size:12px;text-transform:uppercase;letter-spacing:.05em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0 0 10px;font-size:13px}
dt{color:#656d76}
dd{margin:0;word-break:break-all}
.legend{margin:0;font-size:13px;color:#4d555e}
.legend .tag{vertical-align:1px}
main{padding:18px 28px 28px;display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
section{flex:0 1 auto;max-width:100%;background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 16px 14px;box-shadow:0 1px 2px rgba(31,35,40,.06)}
section.wide{flex-basis:100%}
h2{font-size:15px;margin:0 0 10px;font-weight:600}
h2 small{display:block;font-size:12px;font-weight:400;color:#656d76}
.row{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;width:calc(var(--side) + 8px);font-size:12px}
.thumb{width:calc(var(--side) + 8px);height:calc(var(--side) + 8px);display:flex;align-items:center;justify-content:center;background:#eaeef2;border:1px solid #d0d7de;border-radius:4px;overflow:hidden}
.thumb img{display:block;max-width:var(--side);max-height:var(--side)}
.rep .thumb{border:3px solid #1a7f37}
.missing{color:#656d76;font-style:italic}
figcaption{margin-top:5px}
.score{font-weight:600;font-variant-numeric:tabular-nums}
.low .score{color:#9a6700}
.tag{display:inline-block;background:#1a7f37;color:#fff;border-radius:3px;padding:0 5px;font-size:11px;font-weight:600;letter-spacing:.02em}
.name{display:block;color:#424a53;word-break:break-all;max-height:4.4em;overflow:hidden}
details{margin-top:12px;font-size:13px}
summary{cursor:pointer;color:#0969da}
table{border-collapse:collapse;margin-top:6px}
td,th{text-align:left;padding:2px 14px 2px 0;vertical-align:top}
td.num{font-variant-numeric:tabular-nums}
.empty{font-size:15px;color:#4d555e;margin:0}
footer{color:#656d76;font-size:12px;padding:0 28px 24px}
)css";

}  // namespace

std::string thumbnail_data_uri(const std::string& path, int side, int quality) {
  try {
    image::LoadOptions lo;
    lo.channels = 3;
    const image::Image img = image::load_image(path, lo);
    const double s = std::min(1.0, static_cast<double>(side) / std::max(img.width(), img.height()));
    const int w = std::max(1, static_cast<int>(std::lround(img.width() * s)));
    const int h = std::max(1, static_cast<int>(std::lround(img.height() * s)));
    const image::Image small =
        (w == img.width() && h == img.height()) ? img : image::resize(img, w, h);
    return "data:image/jpeg;base64," +
           base64(image::encode_image(small, image::ImageFormat::jpg, quality));
  } catch (const std::exception&) {
    return "";
  }
}

std::string make_report(const std::vector<similarity::DuplicateGroup>& groups,
                        const std::vector<std::string>& paths,
                        const std::vector<data::SkippedFile>& skipped, const ReportOptions& options,
                        const Thumbnailer& thumbnail) {
  const std::size_t max_thumbs = static_cast<std::size_t>(std::max(1, options.max_thumbs));
  // The members that get a thumbnail: the first max_thumbs of each group.
  std::vector<int64_t> ids;
  std::vector<std::string> grouped;
  for (const auto& g : groups) {
    for (std::size_t m = 0; m < g.members.size(); ++m) {
      if (m < max_thumbs) ids.push_back(g.members[m]);
      grouped.push_back(paths[static_cast<std::size_t>(g.members[m])]);
    }
  }
  std::vector<std::string> uris(ids.size());
  {
    Progress bar("thumbnails", static_cast<int64_t>(ids.size()));
    std::atomic<std::size_t> next{0}, done{0};
    const int workers = std::max(1, std::min<int>(num_threads(), static_cast<int>(ids.size())));
    std::vector<std::thread> pool;
    for (int w = 0; w < workers; ++w)
      pool.emplace_back([&] {
        for (std::size_t i; (i = next.fetch_add(1)) < ids.size();) {
          uris[i] = thumbnail(paths[static_cast<std::size_t>(ids[i])]);
          done.fetch_add(1);
        }
      });
    while (done.load() < ids.size()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      bar.update(static_cast<int64_t>(done.load()));
    }
    for (auto& t : pool) t.join();
    bar.finish();
  }

  const std::string folder = common_folder(grouped);
  const std::string side = std::to_string(options.thumb);
  std::string h;
  h.reserve(4096 + uris.size() * 512);
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  // Defence in depth: the page may load nothing and run nothing, whatever a file name holds.
  h += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
       "style-src 'unsafe-inline'\">\n";
  h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += "<title>imgsim near-duplicates: " + plural(groups.size(), "group", "groups") +
       "</title>\n<style>:root{--side:" + side + "px}" + kStyle + "</style>\n</head>\n<body>\n";

  h += "<header>\n<h1>Near-duplicate groups</h1>\n<div class=\"stats\">";
  auto stat = [&](std::size_t n, const char* label) {
    h += "<div class=\"stat\"><b>" + std::to_string(n) + "</b><span>" + label + "</span></div>";
  };
  stat(groups.size(), "groups");
  stat(grouped.size(), "images in groups");
  stat(static_cast<std::size_t>(options.images), "images compared");
  if (!skipped.empty()) stat(skipped.size(), "skipped");
  h += "</div>\n<dl>";
  if (!folder.empty()) h += "<dt>folder</dt><dd>" + html_escape(folder) + "</dd>";
  h += "<dt>model</dt><dd>" + html_escape(options.model) + "</dd>";
  h += "<dt>threshold</dt><dd>" + fixed(options.threshold, 4) +
       (options.threshold_source.empty() ? std::string()
                                         : " (" + html_escape(options.threshold_source) + ")") +
       "</dd>";
  h += "<dt>neighbours</dt><dd>" + std::to_string(options.k) + " per image</dd>";
  h += "</dl>\n<p class=\"legend\">Scores are cosine similarities (1 = identical) against each "
       "group's representative, shown first with a green frame. "
       "Images join a group through any link at or above the threshold, so a score below it "
       "(in amber) means the image is linked through another member. Hover a name for the full "
       "path.</p>\n</header>\n<main>\n";

  if (groups.empty()) h += "<p class=\"empty\">No near-duplicates found.</p>\n";
  std::size_t u = 0;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& g = groups[gi];
    const float lowest =
        g.scores.empty() ? 1.0f : *std::min_element(g.scores.begin(), g.scores.end());
    const std::string gid = std::to_string(gi + 1);
    h += "<section id=\"g" + gid + "\"><h2>Group " + gid + "<small>" +
         plural(g.members.size(), "image", "images") + " &middot; " +
         plural(g.pairs.size(), "link", "links") + " &middot; lowest score " + fixed(lowest, 4) +
         "</small></h2>\n<div class=\"row\">\n";
    const std::size_t shown = std::min(g.members.size(), max_thumbs);
    for (std::size_t m = 0; m < shown; ++m, ++u) {
      const std::string& path = paths[static_cast<std::size_t>(g.members[m])];
      const std::string name = html_escape(shown_name(path, folder));
      const bool low = m > 0 && g.scores[m] < options.threshold;
      h += m == 0 ? "<figure class=\"rep\">" : (low ? "<figure class=\"low\">" : "<figure>");
      h += "<div class=\"thumb\">";
      if (uris[u].empty())
        h += "<span class=\"missing\">unreadable</span>";
      else
        h += "<img src=\"" + uris[u] + "\" alt=\"" + name + "\">";
      h += "</div><figcaption>";
      h += m == 0 ? "<span class=\"tag\">representative</span>"
                  : "<span class=\"score\" title=\"" + fixed6(g.scores[m]) + "\">" +
                        fixed(g.scores[m], 4) + "</span>";
      h += "<span class=\"name\" title=\"" + html_escape(path) + "\">" + name +
           "</span></figcaption></figure>\n";
    }
    h += "</div>\n";
    if (g.members.size() > shown) {
      h += "<details><summary>" + plural(g.members.size() - shown, "more image", "more images") +
           " (listed without thumbnails to keep the page small)</summary><table>"
           "<tr><th>score</th><th>file</th></tr>\n";
      for (std::size_t m = shown; m < g.members.size(); ++m) {
        const std::string& path = paths[static_cast<std::size_t>(g.members[m])];
        h += "<tr><td class=\"num\">" + fixed(g.scores[m], 4) + "</td><td title=\"" +
             html_escape(path) + "\">" + html_escape(shown_name(path, folder)) + "</td></tr>\n";
      }
      h += "</table></details>\n";
    }
    h += "</section>\n";
  }
  if (!skipped.empty()) {
    constexpr std::size_t kMaxListed = 500;
    h += "<section class=\"wide\"><h2>Skipped files<small>" + std::to_string(skipped.size()) +
         " could not be read or embedded</small></h2><details" +
         (skipped.size() <= 10 ? std::string(" open") : std::string()) +
         "><summary>list</summary><table>\n";
    for (std::size_t i = 0; i < skipped.size() && i < kMaxListed; ++i) {
      // Decoder messages often start with the path already.
      std::string reason = skipped[i].reason;
      if (reason.rfind(skipped[i].path + ": ", 0) == 0) reason.erase(0, skipped[i].path.size() + 2);
      h += "<tr><td>" + html_escape(skipped[i].path) + "</td><td>" + html_escape(reason) +
           "</td></tr>\n";
    }
    if (skipped.size() > kMaxListed)
      h += "<tr><td colspan=\"2\">... and " + std::to_string(skipped.size() - kMaxListed) +
           " more</td></tr>\n";
    h += "</table></details></section>\n";
  }
  h += "</main>\n<footer>Made by " +
       html_escape(options.generator.empty() ? "imgsim" : options.generator) +
       " (imgsim dedup --report).</footer>\n</body>\n</html>\n";
  return h;
}

}  // namespace imgsim::cli
