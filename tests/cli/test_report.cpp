// The HTML report of `imgsim dedup --report` (src/cli/report.cpp), checked without a browser:
// self-contained (embedded JPEG thumbnails, nothing loaded from elsewhere, no scripts), file
// names escaped, large groups cut to a number of thumbnails, unreadable images and skipped files
// shown. docs/cli.md, "dedup", says how the page was also looked at in headless Chromium.
#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "../src/cli/common.hpp"
#include "../src/cli/progress.hpp"
#include "../src/cli/report.hpp"
#include "data_test_util.hpp"
#include "imgsim/image/image.hpp"

using namespace imgsim;
using imgsim::testing::TempDir;

namespace {

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = hay.find(needle); at != std::string::npos;
       at = hay.find(needle, at + needle.size()))
    ++n;
  return n;
}

image::Image gradient(int w, int h) {
  image::Image img(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      img.at(x, y, 0) = static_cast<float>(x) / static_cast<float>(w);
      img.at(x, y, 1) = static_cast<float>(y) / static_cast<float>(h);
      img.at(x, y, 2) = 0.5f;
    }
  return img;
}

similarity::DuplicateGroup group_of(std::vector<int64_t> members, std::vector<float> scores) {
  similarity::DuplicateGroup g;
  g.representative = members.front();
  g.members = std::move(members);
  g.scores = std::move(scores);
  for (std::size_t i = 1; i < g.members.size(); ++i)
    g.pairs.push_back({g.members[0], g.members[i], g.scores[i]});
  return g;
}

}  // namespace

TEST_CASE("report: self-contained page with embedded thumbnails and escaped names", "[report]") {
  cli::Progress::set_enabled(false);
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "a<b" /
                                      "<script>alert(1)<");  // "</" needs a folder
  const std::vector<std::string> paths = {
      dir / "plain.png",
      dir / "a<b/<script>alert(1)</script> & \"x\" 'y'.png",
      dir / "broken.png",
  };
  image::save_png(paths[0], gradient(300, 200));
  image::save_png(paths[1], gradient(120, 240));
  {
    std::vector<unsigned char> junk(64, 'x');
    FILE* f = std::fopen(paths[2].c_str(), "wb");
    REQUIRE(f);
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  const std::vector<similarity::DuplicateGroup> groups = {
      group_of({0, 1, 2}, {1.0f, 0.93f, 0.41f})};
  const std::vector<data::SkippedFile> skipped = {
      {dir / "<img src=x onerror=alert(2)>.jpg", "cannot decode image: <bad> & worse"}};
  cli::ReportOptions o;
  o.model = "/models/<m>&.imgsim";
  o.threshold = 0.9f;
  o.threshold_source = "--threshold";
  o.images = 3;
  o.generator = "imgsim test";
  const std::string html = cli::make_report(groups, paths, skipped, o, [](const std::string& p) {
    return cli::thumbnail_data_uri(p, 160);
  });

  // Two readable images: two embedded JPEGs (base64 of FF D8 FF starts "/9j/"); the third is
  // shown as unreadable.
  CHECK(count(html, "<img src=\"data:image/jpeg;base64,/9j/") == 2);
  CHECK(count(html, "<img ") == 2);
  CHECK(html.find("unreadable") != std::string::npos);
  // Nothing fetched from elsewhere, nothing run.
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find("http:") == std::string::npos);
  CHECK(html.find("https:") == std::string::npos);
  CHECK(html.find("file:") == std::string::npos);
  CHECK(html.find("url(") == std::string::npos);
  CHECK(html.find("&lt;img src=x onerror=alert(2)&gt;.jpg") != std::string::npos);
  CHECK(html.find("<img src=x") == std::string::npos);
  CHECK(html.find("Content-Security-Policy") != std::string::npos);
  // Names escaped, in text and in attributes, shown relative to the common folder.
  CHECK(html.find(
            "a&lt;b/&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot; &#39;y&#39;.png") !=
        std::string::npos);
  CHECK(html.find("/models/&lt;m&gt;&amp;.imgsim") != std::string::npos);
  CHECK(html.find("cannot decode image: &lt;bad&gt; &amp; worse") != std::string::npos);
  CHECK(html.find(">plain.png<") != std::string::npos);
  CHECK(html.find("title=\"" + dir.path().string() + "/plain.png\"") != std::string::npos);
  // Header and scores.
  CHECK(html.find("0.9000 (--threshold)") != std::string::npos);
  CHECK(html.find("0.9300") != std::string::npos);
  CHECK(html.find("class=\"low\"") != std::string::npos);  // 0.41 is below the threshold
  CHECK(html.find("class=\"rep\"") != std::string::npos);
  CHECK(html.find("</html>") != std::string::npos);
}

TEST_CASE("report: a large group shows max_thumbs thumbnails and lists the rest", "[report]") {
  cli::Progress::set_enabled(false);
  std::vector<std::string> paths;
  std::vector<int64_t> members;
  std::vector<float> scores;
  for (int i = 0; i < 100; ++i) {
    paths.push_back("/photos/img" + std::to_string(i) + ".jpg");
    members.push_back(i);
    scores.push_back(1.0f - 0.001f * static_cast<float>(i));
  }
  std::vector<similarity::DuplicateGroup> groups = {group_of(members, scores),
                                                    group_of({0, 1}, {1.0f, 0.99f})};
  groups[1].members = {100, 101};
  paths.push_back("/photos/x.jpg");
  paths.push_back("/photos/y.jpg");
  cli::ReportOptions o;
  o.threshold = 0.5f;
  o.images = 102;
  o.max_thumbs = 24;
  std::atomic<int> calls{0};
  const std::string html = cli::make_report(groups, paths, {}, o, [&](const std::string&) {
    ++calls;
    return std::string("data:image/jpeg;base64,AAAA");
  });
  CHECK(calls.load() == 26);
  CHECK(count(html, "<img ") == 26);
  CHECK(html.find("76 more images") != std::string::npos);
  CHECK(html.find(">img99.jpg<") != std::string::npos);  // listed by name
  CHECK(html.find("<b>2</b><span>groups") != std::string::npos);
  CHECK(html.find("<b>102</b><span>images in groups") != std::string::npos);
}

TEST_CASE("report: no groups", "[report]") {
  cli::Progress::set_enabled(false);
  const std::string html =
      cli::make_report({}, {"/a.png"}, {}, {}, [](const std::string&) { return std::string(); });
  CHECK(html.find("No near-duplicates found") != std::string::npos);
  CHECK(html.find("<img") == std::string::npos);
}
