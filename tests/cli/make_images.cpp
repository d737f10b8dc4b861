// Writes the small image sets the CLI test (run.sh) works on, from a fixed seed:
//
//   make_images OUT
//     OUT/classes/<c>/img_<i>.png   4 classes x 10 images, 24 x 24 RGB: stripes across, stripes
//                                   down, a disc, a checkerboard, each with random colours,
//                                   phase, size and noise
//     OUT/dups/                     8 distinct images, an exact copy of one (copy_of_0.png), a
//                                   JPEG re-encoding of another (jpeg_of_1.jpg), and an
//                                   undecodable file (broken.png)
//     OUT/empty/                    no files
//     OUT/bench/                    a tiny near-duplicate benchmark in the format of
//                                   tools/ndbench_build.cpp (docs/ndbench.md, "Files"): 6
//                                   sources, 4 queried (d0000-d0003), 1 distractor (d0004), 1
//                                   unmatched; a JPEG, a flipped and a cropped query of each
//                                   queried or unmatched source (q0000-q0014) and an undecodable
//                                   query (q0015, family jpeg, matching d0000)
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <utility>

#include "imgsim/image/augment.hpp"
#include "imgsim/image/image.hpp"
#include "imgsim/rng.hpp"

namespace fs = std::filesystem;
using imgsim::Rng;
using imgsim::image::Image;

namespace {

Image pattern(int cls, Rng& rng, int size) {
  Image img(size, size, 3);
  float fg[3], bg[3];
  for (int c = 0; c < 3; ++c) {
    fg[c] = rng.uniform(0.55f, 1.0f);
    bg[c] = rng.uniform(0.0f, 0.35f);
  }
  const int period = 4 + static_cast<int>(rng.below(3));
  const int phase = static_cast<int>(rng.below(static_cast<uint64_t>(period)));
  const float cx = size / 2.0f + rng.uniform(-2.0f, 2.0f);
  const float cy = size / 2.0f + rng.uniform(-2.0f, 2.0f);
  const float radius = size * rng.uniform(0.25f, 0.4f);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      bool on = false;
      switch (cls) {
        case 0:
          on = ((y + phase) / (period / 2 + 1)) % 2 == 0;
          break;
        case 1:
          on = ((x + phase) / (period / 2 + 1)) % 2 == 0;
          break;
        case 2:
          on = std::hypot(x - cx, y - cy) < radius;
          break;
        default:
          on = (((x + phase) / period) + ((y + phase) / period)) % 2 == 0;
      }
      for (int c = 0; c < 3; ++c) {
        const float v = (on ? fg[c] : bg[c]) + rng.uniform(-0.05f, 0.05f);
        img.at(x, y, c) = std::fmin(1.0f, std::fmax(0.0f, v));
      }
    }
  return img;
}

// A CSV field (RFC 4180).
std::string csv(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

void write_bench(const fs::path& dir, Rng& rng) {
  namespace im = imgsim::image;
  fs::create_directories(dir / "db");
  fs::create_directories(dir / "queries");
  std::ofstream db(dir / "db.csv", std::ios::binary);
  std::ofstream gt(dir / "ground_truth.csv", std::ios::binary);
  db << "db_id,db_file,role,source\n";
  gt << "query_id,query_file,db_id,family,edits,source\n";
  const std::pair<const char*, im::Edit> edits[] = {{"jpeg", im::edit::Jpeg{50}},
                                                    {"flip", im::edit::FlipH{}},
                                                    {"crop", im::edit::Crop{0.75f, 0.75f}}};
  int q = 0;
  char id[16];
  for (int s = 0; s < 6; ++s) {
    const Image src = pattern(s % 4, rng, 32);
    const std::string source = "generated/source_" + std::to_string(s) + ".png";
    std::string db_id;  // empty for the unmatched source
    if (s < 5) {
      std::snprintf(id, sizeof id, "d%04d", s);
      db_id = id;
      im::save_png((dir / "db" / (db_id + ".png")).string(), src);
      db << db_id << ",db/" << db_id << ".png," << (s < 4 ? "queried" : "distractor") << ','
         << csv(source) << '\n';
      if (s == 4) continue;  // a distractor has no queries
    }
    for (const auto& [family, e] : edits) {
      std::snprintf(id, sizeof id, "q%04d", q++);
      im::save_png((dir / "queries" / (std::string(id) + ".png")).string(), im::apply_edit(src, e));
      gt << id << ",queries/" << id << ".png," << db_id << ',' << family << ','
         << csv(im::to_string(e)) << ',' << csv(source) << '\n';
    }
  }
  std::snprintf(id, sizeof id, "q%04d", q);
  std::ofstream(dir / "queries" / (std::string(id) + ".png")) << "\x89PNG\r\n\x1a\nnot an image";
  gt << id << ",queries/" << id << ".png,d0000,jpeg,jpeg quality=50,generated/source_0.png\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_images OUT\n";
    return 2;
  }
  try {
    const fs::path out = argv[1];
    Rng rng(20240601);
    for (int c = 0; c < 4; ++c) {
      const fs::path dir = out / "classes" / ("class" + std::to_string(c));
      fs::create_directories(dir);
      for (int i = 0; i < 10; ++i)
        imgsim::image::save_png((dir / ("img_" + std::to_string(i) + ".png")).string(),
                                pattern(c, rng, 24));
    }
    const fs::path dups = out / "dups";
    fs::create_directories(dups);
    for (int i = 0; i < 8; ++i)
      imgsim::image::save_png((dups / ("img_" + std::to_string(i) + ".png")).string(),
                              pattern(i % 4, rng, 24));
    fs::copy_file(dups / "img_0.png", dups / "copy_of_0.png", fs::copy_options::overwrite_existing);
    imgsim::image::save_jpg((dups / "jpeg_of_1.jpg").string(),
                            imgsim::image::load_image((dups / "img_1.png").string()), 95);
    std::ofstream(dups / "broken.png") << "\x89PNG\r\n\x1a\nthis is not an image";
    fs::create_directories(out / "empty");
    write_bench(out / "bench", rng);
  } catch (const std::exception& e) {
    std::cerr << "make_images: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
