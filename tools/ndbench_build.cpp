// imgsim-ndbench-build: builds a near-duplicate benchmark from a folder of photos
// (docs/ndbench.md, "How it is built").
//
//   imgsim-ndbench-build --photos data/photos --out data/ndbench --seed 1
//
// Every photo becomes a source: loaded as RGB (EXIF orientation applied), shrunk so its longer
// side is at most --max-side, and hashed with pHash; a source within --dedupe-bits of an earlier
// one is dropped as a duplicate. The sources are shuffled with the seed and split into
//   queried      in the database, and copied by edited queries,
//   distractors  in the database, never queried,
//   unmatched    not in the database, but copied by edited queries (queries without a match).
// Each queried or unmatched source gets one query per single-edit family (crop, resize, jpeg,
// rotate, flip, color, grayscale, blur, text, logo, border) and --combined queries of 2 to 4
// edits from distinct families. Edits come from imgsim::image::random_edit with the benchmark's
// ranges (EditRanges defaults). Database items and queries get anonymous ids in a shuffled order.
// The output is the same for the same photos, options and seed, whatever --threads is.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "imgsim/image/augment.hpp"
#include "imgsim/image/image.hpp"
#include "imgsim/rng.hpp"
#include "imgsim/similarity/phash.hpp"
#include "ndbench_io.hpp"

namespace fs = std::filesystem;
using imgsim::Rng;
using namespace imgsim::image;
namespace nd = imgsim::ndbench;

namespace {

constexpr const char* kUsage = R"(usage: imgsim-ndbench-build --photos DIR --out DIR [options]

  --photos DIR            source photos (searched recursively: .jpg .jpeg .png .bmp)
  --out DIR               benchmark folder to write (created; a previous benchmark there is
                          replaced, any other non-empty folder is refused)
  --seed N                random seed (default 1)
  --queried F             fraction of sources that are queried and in the database (0.5)
  --distractors F         fraction that are in the database only (0.3); the rest are
                          queried without being in the database
  --combined N            combined-edit queries per queried source (3)
  --max-side N            longest side of database images, before edits (512)
  --dedupe-bits N         drop a source whose pHash is within N bits of an earlier one (6;
                          -1 keeps every source)
  --limit N               use at most N sources (0: all)
  --format png|jpg        image files (png: lossless, the default; jpg adds a JPEG at --quality)
  --quality N             JPEG quality for --format jpg (95)
  --threads N             worker threads (2)
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "imgsim-ndbench-build: " << msg << "\n\n" << kUsage;
  std::exit(2);
}

struct Options {
  fs::path photos;
  fs::path out;
  uint64_t seed = 1;
  double queried = 0.5;
  double distractors = 0.3;
  int combined = 3;
  int max_side = 512;
  int dedupe_bits = 6;
  int limit = 0;
  std::string format = "png";
  int quality = 95;
  int threads = 2;
};

template <typename T>
T parse_number(const std::string& flag, const std::string& text) {
  T value{};
  const char* first = text.data();
  const char* last = first + text.size();
  const auto res = std::from_chars(first, last, value);
  if (res.ec != std::errc() || res.ptr != last) usage_error(flag + ": not a number: " + text);
  return value;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (i + 1 >= argc) usage_error("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--photos")
      o.photos = v;
    else if (a == "--out")
      o.out = v;
    else if (a == "--seed")
      o.seed = parse_number<uint64_t>(a, v);
    else if (a == "--queried")
      o.queried = parse_number<double>(a, v);
    else if (a == "--distractors")
      o.distractors = parse_number<double>(a, v);
    else if (a == "--combined")
      o.combined = parse_number<int>(a, v);
    else if (a == "--max-side")
      o.max_side = parse_number<int>(a, v);
    else if (a == "--dedupe-bits")
      o.dedupe_bits = parse_number<int>(a, v);
    else if (a == "--limit")
      o.limit = parse_number<int>(a, v);
    else if (a == "--format")
      o.format = v;
    else if (a == "--quality")
      o.quality = parse_number<int>(a, v);
    else if (a == "--threads")
      o.threads = parse_number<int>(a, v);
    else
      usage_error("unknown option " + a);
  }
  if (o.photos.empty() || o.out.empty()) usage_error("--photos and --out are required");
  if (!(o.queried > 0 && o.distractors >= 0 && o.queried + o.distractors <= 1))
    usage_error("need 0 < --queried, 0 <= --distractors, --queried + --distractors <= 1");
  if (o.combined < 0 || o.combined > 100) usage_error("--combined must be in 0..100");
  if (o.max_side < 16 || o.max_side > 8192) usage_error("--max-side must be in 16..8192");
  if (o.dedupe_bits < -1 || o.dedupe_bits > 64) usage_error("--dedupe-bits must be in -1..64");
  if (o.limit < 0) usage_error("--limit must be >= 0");
  if (o.format != "png" && o.format != "jpg") usage_error("--format must be png or jpg");
  if (o.quality < 1 || o.quality > 100) usage_error("--quality must be in 1..100");
  if (o.threads < 1 || o.threads > 256) usage_error("--threads must be in 1..256");
  return o;
}

// --- sources -------------------------------------------------------------------------------

// RGB, EXIF-upright, longer side at most max_side (area-average shrink, aspect kept).
Image load_source(const fs::path& path, int max_side) {
  LoadOptions lo;
  lo.channels = 3;
  Image img = load_image(path.string(), lo);
  const int longer = std::max(img.width(), img.height());
  if (longer <= max_side) return img;
  const double s = static_cast<double>(max_side) / longer;
  const int w = std::max(1, static_cast<int>(std::lround(img.width() * s)));
  const int h = std::max(1, static_cast<int>(std::lround(img.height() * s)));
  return resize(img, w, h);
}

std::vector<fs::path> find_photos(const fs::path& dir, const fs::path& exclude) {
  std::vector<fs::path> out;
  const fs::path ex = fs::weakly_canonical(exclude);
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    if (it->is_directory() && fs::weakly_canonical(it->path()) == ex) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file()) continue;
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp")
      out.push_back(fs::relative(it->path(), dir));
  }
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) {
    return a.generic_string() < b.generic_string();
  });
  return out;
}

// Runs fn(i) for i in [0, n) on `threads` threads; rethrows the first exception.
template <typename F>
void parallel_for(int64_t n, int threads, F fn) {
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex mu;
  auto work = [&] {
    for (int64_t i = next++; i < n; i = next++) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        next = n;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

template <typename T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// --- edits ---------------------------------------------------------------------------------

enum class Family {
  crop,
  resize,
  jpeg,
  rotate,
  flip,
  color,
  grayscale,
  blur,
  text,
  logo,
  border,
  combined
};
constexpr int kSingleFamilies = 11;
// Order of families inside a combined query: geometry first, overlays next, JPEG last.
constexpr Family kPipelineOrder[kSingleFamilies] = {
    Family::crop, Family::rotate, Family::flip, Family::resize, Family::color, Family::grayscale,
    Family::blur, Family::text,   Family::logo, Family::border, Family::jpeg};

// The edits of one single-family query; `combined_part` limits colour to one adjustment.
std::vector<Edit> family_edits(Family f, Rng& rng, bool combined_part) {
  switch (f) {
    case Family::crop:
      return {random_edit(EditKind::crop, rng)};
    case Family::resize:
      return {random_edit(EditKind::scale, rng)};
    case Family::jpeg:
      return {random_edit(EditKind::jpeg, rng)};
    case Family::rotate:
      return {random_edit(EditKind::rotate, rng)};
    case Family::flip:
      if (rng.uniform() < 0.75f) return {Edit{edit::FlipH{}}};
      return {Edit{edit::FlipV{}}};
    case Family::color: {
      std::vector<EditKind> kinds = {EditKind::brightness, EditKind::contrast, EditKind::saturation,
                                     EditKind::hue};
      shuffle(kinds, rng);
      const std::size_t n = combined_part ? 1 : 1 + rng.below(4);
      std::vector<Edit> out;
      for (std::size_t i = 0; i < n; ++i) out.push_back(random_edit(kinds[i], rng));
      return out;
    }
    case Family::grayscale:
      return {Edit{edit::Grayscale{}}};
    case Family::blur:
      return {random_edit(EditKind::blur, rng)};
    case Family::text:
      return {random_edit(EditKind::text, rng)};
    case Family::logo:
      return {random_edit(EditKind::logo, rng)};
    case Family::border:
      return {random_edit(EditKind::border, rng)};
    case Family::combined:
      break;
  }
  throw std::logic_error("family_edits: combined");
}

std::vector<Edit> combined_edits(Rng& rng) {
  std::vector<int> fams(kSingleFamilies);
  for (int i = 0; i < kSingleFamilies; ++i) fams[static_cast<std::size_t>(i)] = i;
  shuffle(fams, rng);
  const std::size_t m = 2 + rng.below(3);
  fams.resize(m);
  // Draw in the shuffled order (so the draws do not depend on the pipeline order), apply in
  // pipeline order.
  std::map<int, std::vector<Edit>> by_family;
  for (const int f : fams) by_family[f] = family_edits(static_cast<Family>(f), rng, true);
  std::vector<Edit> out;
  for (const Family f : kPipelineOrder) {
    const auto it = by_family.find(static_cast<int>(f));
    if (it != by_family.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }
  return out;
}

std::string join_edits(const std::vector<Edit>& edits) {
  std::string s;
  for (std::size_t i = 0; i < edits.size(); ++i) {
    if (i) s += " | ";
    s += to_string(edits[i]);
  }
  return s;
}

struct Source {
  fs::path rel;
  bool ok = false;
  std::string error;
  int width = 0, height = 0;  // after the shrink
  uint64_t hash = 0;
  std::string role;  // queried, distractor, unmatched, duplicate, unreadable, unused
  std::string note;
  std::string db_id;
  std::vector<int64_t> queries;  // indices into the query plan
};

struct QueryPlan {
  int64_t source = 0;
  Family family = Family::crop;
  std::vector<Edit> edits;
  std::string id;
};

std::string numbered(char prefix, int64_t i, int digits) {
  std::string n = std::to_string(i);
  if (static_cast<int>(n.size()) < digits)
    n.insert(0, static_cast<std::size_t>(digits) - n.size(), '0');
  return prefix + n;
}

int digits_for(int64_t n) {
  int d = 4;
  for (int64_t lim = 10000; n > lim; lim *= 10) ++d;
  return d;
}

// Refuses a non-empty folder that holds no previous benchmark.
void check_out_dir(const fs::path& out) {
  if (fs::exists(out) && !fs::is_empty(out) && !fs::exists(out / "ndbench.json"))
    throw std::runtime_error(out.string() +
                             " is not empty and holds no benchmark (ndbench.json); refusing to "
                             "write there");
}

void prepare_out_dir(const fs::path& out) {
  check_out_dir(out);
  if (fs::exists(out) && !fs::is_empty(out)) {
    for (const char* sub : {"db", "queries"}) fs::remove_all(out / sub);
    for (const char* f : {"ground_truth.csv", "db.csv", "sources.csv", "ndbench.json"})
      fs::remove(out / f);
  }
  fs::create_directories(out / "db");
  fs::create_directories(out / "queries");
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f.flush()) throw std::runtime_error("cannot write " + path.string());
}

int run(const Options& o) {
  const auto families = nd::family_names();
  check_out_dir(o.out);
  std::vector<fs::path> files = find_photos(o.photos, o.out);
  if (files.empty()) throw std::runtime_error("no photos under " + o.photos.string());
  std::cerr << "ndbench-build: " << files.size() << " photos under " << o.photos.string() << "\n";

  // Pass 1: decode, shrink and hash every photo.
  std::vector<Source> sources(files.size());
  parallel_for(static_cast<int64_t>(files.size()), o.threads, [&](int64_t i) {
    Source& s = sources[static_cast<std::size_t>(i)];
    s.rel = files[static_cast<std::size_t>(i)];
    try {
      const Image img = load_source(o.photos / s.rel, o.max_side);
      s.width = img.width();
      s.height = img.height();
      s.hash = imgsim::similarity::phash(img);
      s.ok = true;
    } catch (const std::exception& e) {
      s.error = e.what();
    }
  });

  // Duplicates: a source within dedupe_bits of an earlier kept one.
  std::vector<int64_t> kept;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    Source& s = sources[i];
    if (!s.ok) {
      s.role = "unreadable";
      s.note = s.error;
      std::cerr << "ndbench-build: skipping " << s.rel.generic_string() << ": " << s.error << "\n";
      continue;
    }
    std::optional<int64_t> twin;
    int best = 65;
    if (o.dedupe_bits >= 0)
      for (const int64_t k : kept) {
        const int d =
            imgsim::similarity::hamming_distance(s.hash, sources[static_cast<std::size_t>(k)].hash);
        if (d <= o.dedupe_bits && d < best) {
          best = d;
          twin = k;
        }
      }
    if (twin) {
      s.role = "duplicate";
      s.note = "pHash within " + std::to_string(best) + " bits of " +
               sources[static_cast<std::size_t>(*twin)].rel.generic_string();
      std::cerr << "ndbench-build: dropping " << s.rel.generic_string() << ": " << s.note << "\n";
      continue;
    }
    kept.push_back(static_cast<int64_t>(i));
  }

  // Split.
  Rng rng(o.seed);
  Rng split_rng = rng.split();
  Rng plan_rng = rng.split();
  Rng id_rng = rng.split();
  shuffle(kept, split_rng);
  if (o.limit > 0 && static_cast<int64_t>(kept.size()) > o.limit) {
    for (std::size_t i = static_cast<std::size_t>(o.limit); i < kept.size(); ++i)
      sources[static_cast<std::size_t>(kept[i])].role = "unused";
    kept.resize(static_cast<std::size_t>(o.limit));
  }
  const int64_t n = static_cast<int64_t>(kept.size());
  const int64_t n_queried = std::max<int64_t>(1, std::llround(o.queried * static_cast<double>(n)));
  const int64_t n_distractors = std::min(
      n - n_queried, static_cast<int64_t>(std::llround(o.distractors * static_cast<double>(n))));
  if (n_queried > n) throw std::runtime_error("too few sources");
  for (int64_t i = 0; i < n; ++i)
    sources[static_cast<std::size_t>(kept[static_cast<std::size_t>(i)])].role =
        i < n_queried                   ? "queried"
        : i < n_queried + n_distractors ? "distractor"
                                        : "unmatched";

  // Database ids: queried and distractor sources in a shuffled order.
  std::vector<int64_t> db_sources;
  for (const int64_t k : kept)
    if (sources[static_cast<std::size_t>(k)].role != "unmatched") db_sources.push_back(k);
  shuffle(db_sources, id_rng);
  const int db_digits = digits_for(static_cast<int64_t>(db_sources.size()));
  for (std::size_t i = 0; i < db_sources.size(); ++i)
    sources[static_cast<std::size_t>(db_sources[i])].db_id =
        numbered('d', static_cast<int64_t>(i), db_digits);

  // Query plan, source by source in split order.
  std::vector<QueryPlan> plan;
  for (const int64_t k : kept) {
    if (sources[static_cast<std::size_t>(k)].role == "distractor") continue;
    Rng src_rng = plan_rng.split();
    for (int f = 0; f < kSingleFamilies; ++f)
      plan.push_back(
          {k, static_cast<Family>(f), family_edits(static_cast<Family>(f), src_rng, false), ""});
    for (int c = 0; c < o.combined; ++c)
      plan.push_back({k, Family::combined, combined_edits(src_rng), ""});
  }
  std::vector<int64_t> order(plan.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  shuffle(order, id_rng);
  const int q_digits = digits_for(static_cast<int64_t>(plan.size()));
  for (std::size_t i = 0; i < order.size(); ++i) {
    QueryPlan& q = plan[static_cast<std::size_t>(order[i])];
    q.id = numbered('q', static_cast<int64_t>(i), q_digits);
    sources[static_cast<std::size_t>(q.source)].queries.push_back(order[i]);
  }

  // Pass 2: write database images and queries, source by source.
  prepare_out_dir(o.out);
  const std::string ext = o.format == "png" ? ".png" : ".jpg";
  const auto save = [&](const fs::path& path, const Image& img) {
    if (o.format == "png")
      save_png(path.string(), img);
    else
      save_jpg(path.string(), img, o.quality);
  };
  std::atomic<int64_t> done{0};
  std::mutex log_mu;
  parallel_for(n, o.threads, [&](int64_t i) {
    const Source& s = sources[static_cast<std::size_t>(kept[static_cast<std::size_t>(i)])];
    const Image original = load_source(o.photos / s.rel, o.max_side);
    if (!s.db_id.empty()) save(o.out / "db" / (s.db_id + ext), original);
    Image a, b;
    for (const int64_t qi : s.queries) {
      const QueryPlan& q = plan[static_cast<std::size_t>(qi)];
      a = original;
      for (const Edit& e : q.edits) {
        apply_edit_into(a, b, e);
        std::swap(a, b);
      }
      save(o.out / "queries" / (q.id + ext), a);
    }
    const int64_t d = ++done;
    if (d % 20 == 0 || d == n) {
      std::lock_guard<std::mutex> lock(log_mu);
      std::cerr << "ndbench-build: " << d << " / " << n << " sources written\n";
    }
  });

  // Ground truth, database list, source list, summary.
  std::vector<std::string> gt_rows(plan.size());
  std::map<std::string, int64_t> family_count, family_positive;
  for (const QueryPlan& q : plan) {
    const Source& s = sources[static_cast<std::size_t>(q.source)];
    const std::string& fam = families[static_cast<std::size_t>(q.family)];
    ++family_count[fam];
    if (s.role == "queried") ++family_positive[fam];
    const std::size_t row = static_cast<std::size_t>(std::stoll(q.id.substr(1)));
    gt_rows[row] = nd::csv_field(q.id) + "," + nd::csv_field("queries/" + q.id + ext) + "," +
                   nd::csv_field(s.role == "queried" ? s.db_id : "") + "," + nd::csv_field(fam) +
                   "," + nd::csv_field(join_edits(q.edits)) + "," +
                   nd::csv_field(s.rel.generic_string()) + "\n";
  }
  std::string gt = "query_id,query_file,db_id,family,edits,source\n";
  for (const std::string& r : gt_rows) gt += r;
  write_file(o.out / "ground_truth.csv", gt);

  std::string db = "db_id,db_file,role,source\n";
  for (const int64_t k : db_sources) {
    const Source& s = sources[static_cast<std::size_t>(k)];
    db += nd::csv_field(s.db_id) + "," + nd::csv_field("db/" + s.db_id + ext) + "," +
          nd::csv_field(s.role) + "," + nd::csv_field(s.rel.generic_string()) + "\n";
  }
  write_file(o.out / "db.csv", db);

  std::string src = "source,role,db_id,queries,width,height,phash,note\n";
  for (const Source& s : sources)
    src += nd::csv_field(s.rel.generic_string()) + "," + nd::csv_field(s.role) + "," +
           nd::csv_field(s.db_id) + "," + std::to_string(s.queries.size()) + "," +
           std::to_string(s.width) + "," + std::to_string(s.height) + "," +
           (s.ok ? imgsim::similarity::phash_to_hex(s.hash) : std::string()) + "," +
           nd::csv_field(s.note) + "\n";
  write_file(o.out / "sources.csv", src);

  int64_t n_unmatched = n - n_queried - n_distractors;
  int64_t n_dup = 0, n_bad = 0;
  for (const Source& s : sources) {
    n_dup += s.role == "duplicate";
    n_bad += s.role == "unreadable";
  }
  std::string meta = "{\n  \"format_version\": 1,\n";
  meta += "  \"photos\": " + nd::json_string(o.photos.generic_string()) + ",\n";
  meta += "  \"seed\": " + std::to_string(o.seed) + ",\n";
  meta += "  \"options\": {\"queried\": " + std::to_string(o.queried) +
          ", \"distractors\": " + std::to_string(o.distractors) +
          ", \"combined\": " + std::to_string(o.combined) +
          ", \"max_side\": " + std::to_string(o.max_side) +
          ", \"dedupe_bits\": " + std::to_string(o.dedupe_bits) +
          ", \"limit\": " + std::to_string(o.limit) + ", \"format\": " + nd::json_string(o.format) +
          ", \"quality\": " + std::to_string(o.quality) + "},\n";
  meta += "  \"photos_found\": " + std::to_string(files.size()) + ",\n";
  meta += "  \"unreadable\": " + std::to_string(n_bad) + ",\n";
  meta += "  \"duplicates\": " + std::to_string(n_dup) + ",\n";
  meta += "  \"sources\": " + std::to_string(n) + ",\n";
  meta += "  \"queried\": " + std::to_string(n_queried) + ",\n";
  meta += "  \"distractors\": " + std::to_string(n_distractors) + ",\n";
  meta += "  \"unmatched\": " + std::to_string(n_unmatched) + ",\n";
  meta += "  \"database\": " + std::to_string(db_sources.size()) + ",\n";
  meta += "  \"queries\": " + std::to_string(plan.size()) + ",\n";
  meta += "  \"families\": {";
  for (std::size_t f = 0; f < families.size(); ++f)
    meta += std::string(f ? ", " : "") + nd::json_string(families[f]) +
            ": {\"queries\": " + std::to_string(family_count[families[f]]) +
            ", \"with_match\": " + std::to_string(family_positive[families[f]]) + "}";
  meta += "}\n}\n";
  write_file(o.out / "ndbench.json", meta);

  std::cout << "sources " << n << " (queried " << n_queried << ", distractors " << n_distractors
            << ", unmatched " << n_unmatched << "; dropped: " << n_dup << " duplicates, " << n_bad
            << " unreadable)\n"
            << "database " << db_sources.size() << " images, queries " << plan.size() << " ("
            << n_queried * (kSingleFamilies + o.combined) << " with a match)\n"
            << "written to " << o.out.string() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "imgsim-ndbench-build: " << e.what() << "\n";
    return 1;
  }
}
