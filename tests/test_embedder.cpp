// Embedder, preprocessing metadata, threshold calibration, near-duplicate grouping, retrieval
// metrics and P x K sampling (docs/similarity.md).
#include "imgsim/similarity/embedder.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "data_test_util.hpp"
#include "imgsim/data/pk_sampler.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/rng.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "imgsim/similarity/dedup.hpp"
#include "imgsim/similarity/retrieval.hpp"

using namespace imgsim;
using namespace imgsim::similarity;

namespace {

// A small random CNN ending in L2Normalize, input 3 x 16 x 16, 8-dimensional embeddings.
nn::Sequential tiny_model(uint64_t seed = 7) {
  nn::Sequential m;
  m.add(nn::Conv2D(4, {3, 3}, {.activation = nn::Activation::relu, .input_shape = {3, 16, 16}}));
  m.add(nn::MaxPool2D({2, 2}));
  m.add(nn::Flatten());
  m.add(nn::Dense(8));
  m.add(nn::L2Normalize());
  m.build({3, 16, 16}, seed);
  Preprocessing p;
  p.channels = 3;
  p.height = p.width = 16;
  p.mean = {0.5f};
  p.stddev = {0.25f};
  p.to_metadata(m.metadata());
  return m;
}

image::Image random_image(int w, int h, uint64_t seed, int channels = 3) {
  image::Image img(w, h, channels);
  Rng rng(seed);
  for (int64_t i = 0; i < img.size(); ++i) img.data()[i] = rng.uniform();
  return img;
}

double norm(const float* v, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(v[i]) * v[i];
  return std::sqrt(s);
}

}  // namespace

TEST_CASE("Preprocessing metadata round trip and validation", "[embedder]") {
  Preprocessing p;
  p.channels = 3;
  p.height = 24;
  p.width = 20;
  p.resize = 32;
  p.filter = image::ResizeFilter::bicubic;
  p.mean = {0.1f, 0.2f, 0.3f};
  p.stddev = {0.5f};
  std::map<std::string, std::string> md;
  p.to_metadata(md);
  CHECK(md.at(kMetaInput) == "3x24x20");
  CHECK(md.at(kMetaResize) == "32");
  CHECK(md.at(kMetaFilter) == "bicubic");
  const Preprocessing q = Preprocessing::from_metadata(md, Shape{3, 24, 20});
  CHECK(q.channels == 3);
  CHECK(q.height == 24);
  CHECK(q.width == 20);
  CHECK(q.resize == 32);
  CHECK(q.center_crop);
  CHECK(q.filter == image::ResizeFilter::bicubic);
  CHECK(q.mean == p.mean);  // %.9g round-trips floats exactly
  CHECK(q.stddev == p.stddev);

  // No keys: defaults from the model's input shape.
  const Preprocessing d = Preprocessing::from_metadata({}, Shape{1, 28, 28});
  CHECK(d.channels == 1);
  CHECK(d.resize == 0);
  CHECK(d.mean == std::vector<float>{0.0f});

  auto bad = [&](const std::string& key, const std::string& value) {
    auto m2 = md;
    m2[key] = value;
    return m2;
  };
  CHECK_THROWS_AS(Preprocessing::from_metadata(md, Shape{3, 24, 24}), FormatError);  // input
  CHECK_THROWS_AS(Preprocessing::from_metadata(md, Shape{24, 20}), FormatError);
  CHECK_THROWS_AS(Preprocessing::from_metadata(md, Shape{2, 24, 20}), FormatError);
  CHECK_THROWS_AS(Preprocessing::from_metadata(bad(kMetaMean, "0.1,0.2"), Shape{3, 24, 20}),
                  FormatError);
  CHECK_THROWS_AS(Preprocessing::from_metadata(bad(kMetaMean, "0.1,x,0.3"), Shape{3, 24, 20}),
                  FormatError);
  CHECK_THROWS_AS(Preprocessing::from_metadata(bad(kMetaStd, "0"), Shape{3, 24, 20}), FormatError);
  CHECK_THROWS_AS(Preprocessing::from_metadata(bad(kMetaStd, "nan"), Shape{3, 24, 20}),
                  FormatError);
  CHECK_THROWS_AS(Preprocessing::from_metadata(bad(kMetaCrop, "left"), Shape{3, 24, 20}),
                  FormatError);
  CHECK_THROWS_AS(Preprocessing::from_metadata(bad(kMetaResize, "16"), Shape{3, 24, 20}),
                  FormatError);  // shorter than the crop
  CHECK_THROWS_AS(Preprocessing::from_metadata(bad(kMetaResize, "-1"), Shape{3, 24, 20}),
                  FormatError);
  CHECK_THROWS_AS(Preprocessing::from_metadata(bad(kMetaFilter, "lanczos"), Shape{3, 24, 20}),
                  FormatError);
  CHECK_THROWS_AS(Preprocessing::from_metadata(bad(kMetaVersion, "2"), Shape{3, 24, 20}),
                  FormatError);
}

TEST_CASE("Preprocessing::apply: sizes, channels, normalisation", "[embedder]") {
  Preprocessing p;
  p.channels = 1;
  p.height = p.width = 4;
  p.mean = {0.5f};
  p.stddev = {0.5f};
  // Same size: the pixels themselves, normalised.
  image::Image g = random_image(4, 4, 1, 1);
  std::vector<float> out(16);
  p.apply(g, out.data());
  for (int i = 0; i < 16; ++i)
    CHECK(out[static_cast<std::size_t>(i)] == Approx((g.data()[i] - 0.5f) / 0.5f));
  // A uniform RGB image of any size and aspect becomes a uniform gray input.
  image::Image rgb(37, 11, 3, 0.75f);
  for (bool crop : {true, false})
    for (int resize : {0, 8}) {
      p.center_crop = crop;
      p.resize = resize;
      p.apply(rgb, out.data());
      for (float v : out) CHECK(v == Approx(0.5f).margin(1e-5));
    }
  // Centre crop keeps the middle: left half black, right half white, a 2:1 image cut square.
  image::Image half(8, 4, 1, 0.0f);
  for (int y = 0; y < 4; ++y)
    for (int x = 4; x < 8; ++x) half.at(x, y, 0) = 1.0f;
  p.center_crop = true;
  p.resize = 0;
  p.mean = {0.0f};
  p.stddev = {1.0f};
  p.apply(half, out.data());
  CHECK(out[0] < 0.5f);  // left column from the black half
  CHECK(out[3] > 0.5f);  // right column from the white half
  CHECK_THROWS_AS(p.apply(image::Image(), out.data()), InvalidArgument);
}

TEST_CASE("Embedder: shape, unit length, batch equals single", "[embedder]") {
  Embedder e(tiny_model());
  CHECK(e.dim() == 8);
  CHECK_FALSE(e.has_threshold());
  CHECK_THROWS_AS(e.threshold(), StateError);
  CHECK_THROWS_AS(e.same(0.5f), StateError);

  std::vector<image::Image> imgs;
  for (int i = 0; i < 5; ++i) imgs.push_back(random_image(20 + 3 * i, 16 + i, 100 + i));
  const Tensor batch = e.embed_images(imgs, 2);
  REQUIRE(batch.shape() == Shape({5, 8}));
  for (int i = 0; i < 5; ++i) {
    CHECK(norm(batch.data() + i * 8, 8) == Approx(1.0).epsilon(1e-6));
    const std::vector<float> one = e.embed(imgs[static_cast<std::size_t>(i)]);
    REQUIRE(one.size() == 8);
    for (int t = 0; t < 8; ++t)
      CHECK(one[static_cast<std::size_t>(t)] == Approx(batch.data()[i * 8 + t]).margin(1e-6));
  }
  // Different images give different embeddings.
  CHECK(cosine({batch.data(), 8}, {batch.data() + 8, 8}) < 0.9999f);
}

TEST_CASE("Embedder flip averaging: mirror images embed alike", "[embedder]") {
  // Mirror images built pixel by pixel: left-right, top-bottom, both.
  auto mirror = [](const image::Image& src, bool fx, bool fy) {
    image::Image out(src.width(), src.height(), src.channels());
    for (int y = 0; y < src.height(); ++y)
      for (int x = 0; x < src.width(); ++x)
        for (int c = 0; c < src.channels(); ++c)
          out.at(x, y, c) = src.at(fx ? src.width() - 1 - x : x, fy ? src.height() - 1 - y : y, c);
    return out;
  };
  const image::Image img = random_image(16, 16, 31);
  const std::vector<image::Image> imgs = {img, mirror(img, true, false), mirror(img, false, true),
                                          mirror(img, true, true)};
  auto embed_with = [&](Preprocessing::Flips f) {
    nn::Sequential m = tiny_model();
    Preprocessing p = Preprocessing::from_metadata(m.metadata(), m.input_shape());
    p.flip_average = f;
    p.to_metadata(m.metadata());
    Embedder e(std::move(m));
    CHECK(e.preprocessing().flip_average == f);
    return e.embed_images(imgs);
  };
  auto cos = [](const Tensor& t, int i, int j) {
    return cosine({t.data() + i * 8, 8}, {t.data() + j * 8, 8});
  };
  const Tensor none = embed_with(Preprocessing::Flips::none);
  const Tensor h = embed_with(Preprocessing::Flips::h);
  const Tensor hv = embed_with(Preprocessing::Flips::hv);
  // Without averaging, a random network tells a mirror image from the original.
  CHECK(cos(none, 0, 1) < 0.9999f);
  // h: left-right mirrors (and the top-bottom pair) coincide, top-bottom ones need not.
  CHECK(cos(h, 0, 1) == Approx(1.0f).margin(1e-5));
  CHECK(cos(h, 2, 3) == Approx(1.0f).margin(1e-5));
  CHECK(cos(h, 0, 2) < 0.9999f);
  // hv: all four coincide.
  for (int i = 1; i < 4; ++i) CHECK(cos(hv, 0, i) == Approx(1.0f).margin(1e-5));
  for (int i = 0; i < 4; ++i) CHECK(norm(hv.data() + i * 8, 8) == Approx(1.0).epsilon(1e-6));
  // The average is the normalised sum of the plain embeddings of the four images.
  std::vector<double> sum(8, 0.0);
  for (int i = 0; i < 4; ++i)
    for (int t = 0; t < 8; ++t) sum[static_cast<std::size_t>(t)] += none.data()[i * 8 + t];
  const double n = std::sqrt(std::inner_product(sum.begin(), sum.end(), sum.begin(), 0.0));
  for (int t = 0; t < 8; ++t)
    CHECK(hv.data()[t] == Approx(sum[static_cast<std::size_t>(t)] / n).margin(1e-5));
  // set_flip_average overrides the model's setting: the same embeddings as a model that says so.
  {
    Embedder e(tiny_model());
    REQUIRE(e.preprocessing().flip_average == Preprocessing::Flips::none);
    e.set_flip_average(Preprocessing::Flips::hv);
    const Tensor over = e.embed_images(imgs);
    for (int64_t i = 0; i < over.numel(); ++i) CHECK(over[i] == hv[i]);
    e.set_flip_average(Preprocessing::Flips::none);
    const Tensor back = e.embed_images(imgs);
    for (int64_t i = 0; i < back.numel(); ++i) CHECK(back[i] == none[i]);
  }
  // Metadata values.
  std::map<std::string, std::string> md;
  Preprocessing p;
  p.flip_average = Preprocessing::Flips::hv;
  p.to_metadata(md);
  CHECK(md.at(kMetaFlipAverage) == "hv");
  CHECK(Preprocessing::from_metadata(md, Shape{3, 64, 64}).flip_average ==
        Preprocessing::Flips::hv);
  md.erase(kMetaFlipAverage);
  CHECK(Preprocessing::from_metadata(md, Shape{3, 64, 64}).flip_average ==
        Preprocessing::Flips::none);
  md[kMetaFlipAverage] = "yes";
  CHECK_THROWS_AS(Preprocessing::from_metadata(md, Shape{3, 64, 64}), FormatError);
}

TEST_CASE("Embedder shift averaging: the normalised sum over the shifted views", "[embedder]") {
  // Two inputs (3 x 16 x 16, already normalised); each view built element by element.
  Tensor x({2, 3, 16, 16});
  Rng rng(5);
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
  auto view = [&](bool fx, int dx, int dy) {
    Tensor v(x.shape());
    for (int64_t p = 0; p < 6; ++p)
      for (int r = 0; r < 16; ++r)
        for (int q = 0; q < 16; ++q) {
          const int sr = std::clamp(r + dy, 0, 15), sq = std::clamp(q + dx, 0, 15);
          v[(p * 16 + r) * 16 + q] = x[(p * 16 + sr) * 16 + (fx ? 15 - sq : sq)];
        }
    return v;
  };
  Embedder plain(tiny_model());
  for (const bool flips : {false, true})
    for (const int s : {1, 3}) {
      INFO("flips " << flips << ", shift " << s);
      Embedder e(tiny_model());
      e.set_shift_average(s);
      if (flips) e.set_flip_average(Preprocessing::Flips::h);
      const Tensor got = e.embed_inputs(x);
      std::vector<double> sum(16, 0.0);
      for (const bool fx : {false, true}) {
        if (fx && !flips) continue;
        for (const auto& [dx, dy] : {std::pair{0, 0}, {s, 0}, {-s, 0}, {0, s}, {0, -s}}) {
          const Tensor one = plain.embed_inputs(view(fx, dx, dy));
          for (int t = 0; t < 16; ++t) sum[static_cast<std::size_t>(t)] += one[t];
        }
      }
      for (int i = 0; i < 2; ++i) {
        double n = 0.0;
        for (int t = 0; t < 8; ++t)
          n += sum[static_cast<std::size_t>(i * 8 + t)] * sum[static_cast<std::size_t>(i * 8 + t)];
        for (int t = 0; t < 8; ++t)
          CHECK(got[i * 8 + t] ==
                Approx(sum[static_cast<std::size_t>(i * 8 + t)] / std::sqrt(n)).margin(1e-5));
      }
      // The views matter: the average is not the plain embedding.
      const Tensor base = plain.embed_inputs(x);
      CHECK(cosine({got.data(), 8}, {base.data(), 8}) < 0.9999f);
    }
  // Off again: the plain embedding, bit for bit.
  Embedder e(tiny_model());
  e.set_shift_average(2);
  e.set_shift_average(0);
  const Tensor a = e.embed_inputs(x), b = plain.embed_inputs(x);
  for (int64_t i = 0; i < a.numel(); ++i) CHECK(a[i] == b[i]);
  CHECK_THROWS_AS(e.set_shift_average(9), InvalidArgument);
  CHECK_THROWS_AS(e.set_shift_average(-1), InvalidArgument);
  CHECK(e.preprocessing().shift_average == 0);
  // Metadata: written only when on; malformed values refused.
  std::map<std::string, std::string> md;
  Preprocessing p;
  p.to_metadata(md);
  CHECK(md.count(kMetaShiftAverage) == 0);
  p.shift_average = 2;
  p.to_metadata(md);
  CHECK(md.at(kMetaShiftAverage) == "2");
  CHECK(Preprocessing::from_metadata(md, Shape{3, 64, 64}).shift_average == 2);
  for (const char* bad : {"9", "-1", "x", "", "1.5"}) {
    md[kMetaShiftAverage] = bad;
    CHECK_THROWS_AS(Preprocessing::from_metadata(md, Shape{3, 64, 64}), FormatError);
  }
}

TEST_CASE("Embedder::compare: symmetric, 1 for identical images", "[embedder]") {
  Embedder e(tiny_model());
  const image::Image a = random_image(30, 20, 1), b = random_image(18, 25, 2);
  CHECK(e.compare(a, a) == Approx(1.0f).margin(1e-6));
  const float ab = e.compare(a, b), ba = e.compare(b, a);
  CHECK(ab == ba);
  CHECK(ab < 0.9999f);
  CHECK(ab >= -1.0f);
  CHECK(cosine(std::vector<float>{1, 0}, std::vector<float>{0, 0}) == 0.0f);
  CHECK(cosine(std::vector<float>{3, 4}, std::vector<float>{6, 8}) == Approx(1.0f));
  CHECK_THROWS_AS(cosine(std::vector<float>{1}, std::vector<float>{1, 2}), InvalidArgument);
  CHECK_THROWS_AS(e.compare(a, image::Image()), InvalidArgument);
}

TEST_CASE("Embedder: threshold metadata round trip through a model file", "[embedder]") {
  testing::TempDir dir;
  Embedder e(tiny_model());
  e.set_threshold(0.8125f, "synthetic pairs");
  CHECK(e.same(0.8125f));
  CHECK_FALSE(e.same(std::nextafter(0.8125f, 0.0f)));
  e.save(dir / "m.imgsim");

  Embedder back(dir / "m.imgsim");
  REQUIRE(back.has_threshold());
  CHECK(back.threshold() == 0.8125f);
  CHECK(back.model().metadata().at(kMetaThresholdSource) == "synthetic pairs");
  CHECK(back.preprocessing().mean == std::vector<float>{0.5f});
  CHECK(back.path() == dir / "m.imgsim");
  // An odd threshold survives %.9g exactly.
  const float odd = 0.1f + 1e-7f;
  back.set_threshold(odd);
  back.save(dir / "m2.imgsim");
  CHECK(Embedder(dir / "m2.imgsim").threshold() == odd);
  CHECK_THROWS_AS(back.set_threshold(std::nanf("")), InvalidArgument);

  // Malformed metadata: one-line FormatError naming the file and the key.
  nn::Sequential m = tiny_model();
  m.metadata()[kMetaThreshold] = "high";
  m.save(dir / "bad.imgsim");
  try {
    Embedder bad(dir / "bad.imgsim");
    FAIL("no exception");
  } catch (const FormatError& ex) {
    const std::string msg = ex.what();
    CHECK(msg.find("bad.imgsim") != std::string::npos);
    CHECK(msg.find(kMetaThreshold) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
  }
  CHECK_THROWS_AS(Embedder(dir / "missing.imgsim"), IoError);
}

TEST_CASE("Embedder::embed_files: unreadable files are skipped, not fatal", "[embedder]") {
  testing::TempDir dir;
  image::save_png(dir / "a.png", random_image(20, 20, 11));
  testing::write_file(dir / "broken.png", {0x89, 'P', 'N', 'G', 1, 2, 3});
  image::save_jpg(dir / "c.jpg", random_image(33, 17, 12), 90);
  const std::vector<std::string> paths = {dir / "a.png", dir / "broken.png", dir / "missing.png",
                                          dir / "c.jpg"};
  Embedder e(tiny_model());
  for (int64_t bs : {1, 3, 64}) {
    int64_t calls = 0, last = 0;
    EmbedOptions opt;
    opt.batch_size = bs;
    opt.progress = [&](int64_t done, int64_t total) {
      ++calls;
      CHECK(total == 4);
      CHECK(done > last);
      last = done;
    };
    const EmbedResult r = e.embed_files(paths, opt);
    CHECK(last == 4);
    CHECK(calls == (4 + bs - 1) / bs);
    REQUIRE(r.size() == 2);
    CHECK(r.rows == std::vector<std::size_t>{0, 3});
    REQUIRE(r.skipped.size() == 2);
    CHECK(r.skipped[0].path == dir / "broken.png");
    CHECK(r.skipped[1].path == dir / "missing.png");
    CHECK_FALSE(r.skipped[0].reason.empty());
    const std::vector<float> a = e.embed_file(dir / "a.png");
    for (int t = 0; t < 8; ++t)
      CHECK(r.row(0)[t] == Approx(a[static_cast<std::size_t>(t)]).margin(1e-6));
  }
  CHECK_THROWS_AS(e.embed_file(dir / "broken.png"), FormatError);
  CHECK_THROWS_AS(e.embed_file(dir / "missing.png"), IoError);
  CHECK(e.embed_files({}).size() == 0);
}

TEST_CASE("calibrate_threshold: synthetic scores", "[embedder][calibration]") {
  SECTION("separable: the middle of the widest gap, accuracy 1") {
    const std::vector<float> same = {0.9f, 0.95f, 0.8f}, diff = {0.1f, 0.2f, 0.3f};
    const Calibration c = calibrate_threshold(same, diff);
    CHECK(c.threshold == Approx(0.55f));
    CHECK(c.accuracy == 1.0);
    CHECK(c.precision == 1.0);
    CHECK(c.recall == 1.0);
    CHECK(c.specificity == 1.0);
    CHECK(c.same_pairs == 3);
    CHECK(c.different_pairs == 3);
  }
  SECTION("overlapping Gaussians: near the crossing, and the reported figures hold") {
    Rng rng(5);
    std::vector<float> same, diff;
    for (int i = 0; i < 4000; ++i) same.push_back(0.8f + 0.1f * rng.normal());
    for (int i = 0; i < 4000; ++i) diff.push_back(0.4f + 0.1f * rng.normal());
    const Calibration c = calibrate_threshold(same, diff);
    CHECK(c.threshold > 0.55f);
    CHECK(c.threshold < 0.65f);  // equal spreads and counts: the crossing is at 0.6
    CHECK(c.accuracy > 0.96);
    CHECK(c.accuracy < 0.99);  // Phi(2) = 0.977
    int64_t tp = 0, tn = 0;
    for (float s : same) tp += s >= c.threshold;
    for (float s : diff) tn += s < c.threshold;
    CHECK(c.accuracy == Approx(static_cast<double>(tp + tn) / 8000.0));
    CHECK(c.recall == Approx(static_cast<double>(tp) / 4000.0));
    // No other threshold does better.
    for (float t = 0.3f; t < 0.9f; t += 0.005f) {
      int64_t a = 0;
      for (float s : same) a += s >= t;
      for (float s : diff) a += s < t;
      CHECK(static_cast<double>(a) / 8000.0 <= c.accuracy + 1e-12);
    }
    // A precision target moves the threshold up and is met.
    CalibrationOptions o;
    o.target_precision = 0.999;
    const Calibration p = calibrate_threshold(same, diff, o);
    CHECK(p.target_met);
    CHECK(p.precision >= 0.999);
    CHECK(p.threshold > c.threshold);
    CHECK(p.recall < c.recall);
  }
  SECTION("unreachable precision: the most precise threshold, flagged") {
    const std::vector<float> same = {0.5f, 0.5f}, diff = {0.5f, 0.9f};
    CalibrationOptions o;
    o.target_precision = 0.9;
    const Calibration c = calibrate_threshold(same, diff, o);
    CHECK_FALSE(c.target_met);
    CHECK(c.precision == 0.5);  // score >= 0.5 calls all four pairs same
    CHECK(c.threshold == 0.5f);
  }
  SECTION("all scores equal: everything same or nothing same") {
    const std::vector<float> same = {0.7f, 0.7f, 0.7f}, diff = {0.7f};
    const Calibration c = calibrate_threshold(same, diff);
    CHECK(c.accuracy == Approx(0.75));
    CHECK(c.threshold == 0.7f);
  }
  SECTION("errors") {
    const std::vector<float> ok = {0.5f}, none, nan = {std::nanf("")};
    CHECK_THROWS_AS(calibrate_threshold(none, ok), InvalidArgument);
    CHECK_THROWS_AS(calibrate_threshold(ok, none), InvalidArgument);
    CHECK_THROWS_AS(calibrate_threshold(ok, nan), InvalidArgument);
    CalibrationOptions o;
    o.target_precision = 1.5;
    CHECK_THROWS_AS(calibrate_threshold(ok, ok, o), InvalidArgument);
  }
}

namespace {

// Clusters of the given sizes around random unit centres (noise `spread`), then singletons;
// returns vectors and the cluster of each row (-1 for singletons).
std::vector<float> clustered(const std::vector<int>& sizes, int singletons, int64_t dim,
                             float spread, uint64_t seed, std::vector<int>& cluster) {
  Rng rng(seed);
  std::vector<float> v;
  auto centre = [&] {
    std::vector<float> c(static_cast<std::size_t>(dim));
    for (float& x : c) x = rng.normal();
    const double n = norm(c.data(), dim);
    for (float& x : c) x = static_cast<float>(x / n);
    return c;
  };
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    const std::vector<float> c = centre();
    for (int i = 0; i < sizes[k]; ++i) {
      for (int64_t t = 0; t < dim; ++t)
        v.push_back(c[static_cast<std::size_t>(t)] + spread * rng.normal());
      cluster.push_back(static_cast<int>(k));
    }
  }
  for (int i = 0; i < singletons; ++i) {
    const std::vector<float> c = centre();
    v.insert(v.end(), c.begin(), c.end());
    cluster.push_back(-1);
  }
  return v;
}

}  // namespace

TEST_CASE("find_duplicate_groups: known clusters", "[dedup]") {
  const int64_t dim = 32;
  std::vector<int> cluster;
  const std::vector<float> v = clustered({2, 4, 3}, 6, dim, 0.02f, 21, cluster);
  const auto n = static_cast<int64_t>(cluster.size());
  // Ids are shuffled and not contiguous.
  std::vector<int64_t> ids(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = 1000 - 7 * i;
  DedupOptions opt;
  opt.threshold = 0.95f;
  opt.k = 5;
  const std::vector<DuplicateGroup> g = find_duplicate_groups(n, dim, v.data(), ids.data(), opt);
  REQUIRE(g.size() == 3);
  // Largest first: the 4-cluster (rows 2..5), then 3 (rows 6..8), then 2 (rows 0..1).
  const std::vector<std::vector<int64_t>> want_rows = {{2, 3, 4, 5}, {6, 7, 8}, {0, 1}};
  for (std::size_t k = 0; k < 3; ++k) {
    std::set<int64_t> want;
    for (int64_t r : want_rows[k]) want.insert(ids[static_cast<std::size_t>(r)]);
    CHECK(std::set<int64_t>(g[k].members.begin(), g[k].members.end()) == want);
    CHECK(g[k].members.front() == g[k].representative);
    REQUIRE(g[k].scores.size() == g[k].members.size());
    CHECK(g[k].scores[0] == Approx(1.0f).margin(1e-5));
    for (std::size_t i = 1; i < g[k].scores.size(); ++i) {
      CHECK(g[k].scores[i] <= g[k].scores[i - 1]);
      CHECK(g[k].scores[i] > 0.95f);
    }
    // Every pair of a tight cluster is found (k >= cluster size), each once, a < b, sorted.
    const std::size_t m = g[k].members.size();
    CHECK(g[k].pairs.size() == m * (m - 1) / 2);
    for (std::size_t i = 0; i < g[k].pairs.size(); ++i) {
      CHECK(g[k].pairs[i].a < g[k].pairs[i].b);
      CHECK(g[k].pairs[i].score >= opt.threshold);
      if (i)
        CHECK((g[k].pairs[i - 1].a < g[k].pairs[i].a ||
               (g[k].pairs[i - 1].a == g[k].pairs[i].a && g[k].pairs[i - 1].b < g[k].pairs[i].b)));
    }
  }

  // The same groups whatever the thread count and query batching.
  const int threads = num_threads();
  for (int t : {1, 2}) {
    set_num_threads(t);
    DedupOptions o2 = opt;
    o2.query_batch = 4;
    const auto again = find_duplicate_groups(n, dim, v.data(), ids.data(), o2);
    REQUIRE(again.size() == g.size());
    for (std::size_t k = 0; k < g.size(); ++k) {
      CHECK(again[k].members == g[k].members);
      CHECK(again[k].representative == g[k].representative);
      CHECK(again[k].scores == g[k].scores);
    }
  }
  set_num_threads(threads);

  // A threshold above every score: no groups; below every score: one group of all.
  opt.threshold = 1.01f;
  CHECK(find_duplicate_groups(n, dim, v.data(), ids.data(), opt).empty());
  opt.threshold = -1.01f;
  opt.k = n;
  const auto all = find_duplicate_groups(n, dim, v.data(), ids.data(), opt);
  REQUIRE(all.size() == 1);
  CHECK(all[0].members.size() == static_cast<std::size_t>(n));

  opt.k = 0;
  CHECK_THROWS_AS(find_duplicate_groups(n, dim, v.data(), ids.data(), opt), InvalidArgument);
}

TEST_CASE("find_duplicate_groups: links are transitive, from an index", "[dedup]") {
  // A chain on the unit circle: 0 deg, 20 deg, 40 deg; neighbours score cos 20 = 0.94, the ends
  // cos 40 = 0.77. With threshold 0.9 all three form one group through the middle one, which is
  // the representative (two links).
  FlatIndex index(2);
  const double r = 3.14159265358979 / 180.0;
  const float v[] = {1.0f,
                     0.0f,
                     static_cast<float>(std::cos(20 * r)),
                     static_cast<float>(std::sin(20 * r)),
                     static_cast<float>(std::cos(40 * r)),
                     static_cast<float>(std::sin(40 * r)),
                     -1.0f,
                     0.0f};
  const int64_t ids[] = {10, 11, 12, 13};
  index.add(4, v, ids);
  const auto g = find_duplicate_groups(index, {.threshold = 0.9f, .k = 3});
  REQUIRE(g.size() == 1);
  CHECK(g[0].representative == 11);
  CHECK(g[0].members.front() == 11);
  CHECK(std::set<int64_t>(g[0].members.begin(), g[0].members.end()) ==
        std::set<int64_t>{10, 11, 12});
  CHECK(g[0].pairs.size() == 2);
  CHECK(g[0].scores[1] == Approx(std::cos(20 * r)).epsilon(1e-5));
  // Removed vectors are not grouped.
  index.remove(std::vector<int64_t>{11});
  CHECK(find_duplicate_groups(index, {.threshold = 0.9f, .k = 3}).empty());
}

namespace {

// Straightforward recall@1 and MAP@R: sort all others by score.
RetrievalMetrics reference_metrics(int64_t n, int64_t dim, const std::vector<float>& v,
                                   const std::vector<int>& labels) {
  RetrievalMetrics m;
  double r1 = 0, ap = 0;
  for (int64_t q = 0; q < n; ++q) {
    std::vector<std::pair<double, int64_t>> others;
    for (int64_t j = 0; j < n; ++j)
      if (j != q) {
        double s = 0;
        for (int64_t t = 0; t < dim; ++t)
          s += static_cast<double>(v[static_cast<std::size_t>(q * dim + t)]) *
               v[static_cast<std::size_t>(j * dim + t)];
        others.emplace_back(-s, j);
      }
    std::sort(others.begin(), others.end());
    int64_t R = 0;
    for (int64_t j = 0; j < n; ++j)
      R += j != q && labels[static_cast<std::size_t>(j)] == labels[static_cast<std::size_t>(q)];
    if (R == 0) {
      ++m.skipped_queries;
      continue;
    }
    ++m.queries;
    r1 += labels[static_cast<std::size_t>(others[0].second)] == labels[static_cast<std::size_t>(q)];
    double a = 0;
    int64_t hits = 0;
    for (int64_t i = 0; i < R; ++i)
      if (labels[static_cast<std::size_t>(others[static_cast<std::size_t>(i)].second)] ==
          labels[static_cast<std::size_t>(q)])
        a += static_cast<double>(++hits) / static_cast<double>(i + 1);
    ap += a / static_cast<double>(R);
  }
  m.recall_at_1 = r1 / static_cast<double>(m.queries);
  m.map_at_r = ap / static_cast<double>(m.queries);
  return m;
}

}  // namespace

TEST_CASE("evaluate_retrieval: recall@1 and MAP@R", "[retrieval]") {
  SECTION("by hand") {
    // 2-D unit vectors at 0, 10, 25, 90 and 100 degrees, labels A A B B A; the nearest others:
    // query 0 (A, R = 2): 10 A, 25 B        -> recall 1, AP = (1/1) / 2 = 1/2
    // query 1 (A, R = 2): 0 A, 25 B         -> recall 1, AP = 1/2
    // query 2 (B, R = 1): 10 A              -> recall 0, AP = 0
    // query 3 (B, R = 1): 100 A             -> recall 0, AP = 0
    // query 4 (A, R = 2): 90 B, 25 B        -> recall 0, AP = 0
    const double r = 3.14159265358979 / 180.0;
    std::vector<float> v;
    for (double deg : {0.0, 10.0, 25.0, 90.0, 100.0}) {
      v.push_back(static_cast<float>(std::cos(deg * r)));
      v.push_back(static_cast<float>(std::sin(deg * r)));
    }
    const std::vector<int> labels = {0, 0, 1, 1, 0};
    const RetrievalMetrics m = evaluate_retrieval(5, 2, v.data(), labels);
    CHECK(m.queries == 5);
    CHECK(m.skipped_queries == 0);
    CHECK(m.recall_at_1 == Approx(2.0 / 5.0));
    CHECK(m.map_at_r == Approx((0.5 + 0.5) / 5.0));
  }
  SECTION("random data against a brute-force reference") {
    std::vector<int> cluster;
    const std::vector<float> v = clustered({6, 5, 7, 4}, 3, 8, 0.6f, 33, cluster);
    const auto n = static_cast<int64_t>(cluster.size());
    const RetrievalMetrics m = evaluate_retrieval(n, 8, v.data(), cluster, {.query_batch = 5});
    // cosine of normalised rows vs raw inner products: normalise for the reference.
    std::vector<float> u = v;
    for (int64_t i = 0; i < n; ++i) {
      const double s = norm(u.data() + i * 8, 8);
      for (int t = 0; t < 8; ++t)
        u[static_cast<std::size_t>(i * 8 + t)] =
            static_cast<float>(u[static_cast<std::size_t>(i * 8 + t)] / s);
    }
    const RetrievalMetrics ref = reference_metrics(n, 8, u, cluster);
    CHECK(m.queries == ref.queries);  // the 3 singletons share label -1: R = 2, not skipped
    CHECK(m.recall_at_1 == Approx(ref.recall_at_1));
    CHECK(m.map_at_r == Approx(ref.map_at_r));
    CHECK(m.map_at_r > 0.0);
    CHECK(m.map_at_r < 1.0);
  }
  SECTION("a label seen once is not a query") {
    const std::vector<float> v = {1, 0, 0.9f, 0.1f, 0, 1};
    const RetrievalMetrics m = evaluate_retrieval(3, 2, v.data(), std::vector<int>{4, 4, 9});
    CHECK(m.queries == 2);
    CHECK(m.skipped_queries == 1);
    CHECK(m.recall_at_1 == 1.0);
    CHECK(m.map_at_r == 1.0);
  }
  CHECK_THROWS_AS(evaluate_retrieval(1, 2, std::vector<float>{1, 0}.data(), std::vector<int>{0}),
                  InvalidArgument);
  CHECK_THROWS_AS(
      evaluate_retrieval(2, 2, std::vector<float>{1, 0, 0, 1}.data(), std::vector<int>{0}),
      InvalidArgument);
}

TEST_CASE("PKSampledDataset: P classes x K samples, seeded", "[pk]") {
  // 5 classes with 3, 6, 1, 8, 4 samples; the class of 1 is never drawn.
  const std::vector<int> counts = {3, 6, 1, 8, 4};
  std::vector<int> labels;
  for (int c = 0; c < 5; ++c)
    for (int i = 0; i < counts[static_cast<std::size_t>(c)]; ++i) labels.push_back(c);
  const auto n = static_cast<int64_t>(labels.size());
  Tensor x({n, 2}), y({n});
  for (int64_t i = 0; i < n; ++i) {
    x[i * 2] = static_cast<float>(i);
    y[i] = static_cast<float>(labels[static_cast<std::size_t>(i)]);
  }
  data::TensorDataset base(x, y);
  data::PKSampledDataset pk(base, labels, 3, 4, 10, 99);
  CHECK(pk.size() == 120);
  CHECK(pk.usable_classes() == 4);
  CHECK(pk.input_shape() == Shape{2});
  std::vector<int64_t> dummy(12, 0);
  Tensor bx, by;
  for (int b = 0; b < 20; ++b) {
    pk.get(dummy, bx, by);
    REQUIRE(bx.dim(0) == 12);
    std::map<int, std::set<int64_t>> per_class;
    std::map<int, int> draws;
    for (int i = 0; i < 12; ++i) {
      const auto row = static_cast<int64_t>(bx[i * 2]);
      const int label = static_cast<int>(by[i]);
      CHECK(labels[static_cast<std::size_t>(row)] == label);  // rows and labels travel together
      CHECK(label != 2);
      per_class[label].insert(row);
      ++draws[label];
    }
    CHECK(draws.size() == 3);  // P distinct classes
    for (const auto& [label, k] : draws) {
      CHECK(k == 4);
      // Without replacement when the class is large enough.
      if (counts[static_cast<std::size_t>(label)] >= 4) CHECK(per_class[label].size() == 4);
    }
  }
  // Same seed, same batches.
  data::PKSampledDataset a(base, labels, 3, 4, 1, 5), b(base, labels, 3, 4, 1, 5);
  for (int i = 0; i < 5; ++i) CHECK(a.sample(12) == b.sample(12));
  // A batch that is not a multiple of K: the last class is cut short.
  CHECK(a.sample(7).size() == 7);
  CHECK_THROWS_AS(data::PKSampledDataset(base, labels, 0, 4, 1), InvalidArgument);
  CHECK_THROWS_AS(data::PKSampledDataset(base, std::vector<int>{1, 2}, 2, 2, 1), InvalidArgument);
  std::vector<int> distinct(labels.size());
  std::iota(distinct.begin(), distinct.end(), 0);
  CHECK_THROWS_AS(data::PKSampledDataset(base, distinct, 2, 2, 1), InvalidArgument);
}
