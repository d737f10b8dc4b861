// imgsim FlatIndex vs faiss IndexFlatIP (exact top-k, same data, same threads, same run), and
// HnswIndex recall / speed against exact search. Built only when faiss is found (Debian:
// libfaiss-dev); faiss is for measuring only, the library never depends on it.
//
//   index_compare [--n 1000000] [--d 128] [--k 10] [--nq 1000] [--single 40] [--threads 2]
//                 [--reps 3] [--hnsw-n N] [--hnsw-m 16] [--efc 100] [--ef 32,64,128,256]
//                 [--no-hnsw] [--faiss-blas-threshold T] [--clusters C --spread S]
//
// Vectors and queries are seeded random normal vectors, L2-normalised. Timings are interleaved
// (imgsim, faiss, imgsim, faiss, ...) and the median of --reps repetitions is reported, because
// the machine may be shared. Single-query mode times --single separate 1-query searches; batched
// mode one search of --nq queries. faiss uses BLAS for batches of 20 or more queries
// (distance_compute_blas_threshold); --faiss-blas-threshold changes that.
#include <faiss/IndexFlat.h>
#include <faiss/utils/distances.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "imgsim/rng.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "imgsim/similarity/index.hpp"
#include "kernels/distance.hpp"

namespace {

using imgsim::similarity::FlatIndex;
using imgsim::similarity::HnswIndex;
using imgsim::similarity::Metric;
using imgsim::similarity::SearchResult;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time of the whole process (all threads), for runs on a busy machine.
double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Clustered data (--clusters C): each row is a random centre plus spread x normal noise (per
// component, centres being unit vectors), normalised: a crude stand-in for embeddings, which
// have far less intrinsic dimension than uniform random vectors.
std::vector<float> clustered_unit(int64_t n, int64_t d, int64_t clusters, float spread,
                                  const std::vector<float>& centres, uint64_t seed) {
  std::vector<float> v(static_cast<std::size_t>(n * d));
  const float scale = spread / std::sqrt(static_cast<float>(d));
  const int64_t blocks = 64;
#pragma omp parallel for
  for (int64_t b = 0; b < blocks; ++b) {
    imgsim::Rng rng(seed * 1000003 + static_cast<uint64_t>(b));
    for (int64_t i = n * b / blocks; i < n * (b + 1) / blocks; ++i) {
      const auto c = static_cast<int64_t>(rng.below(static_cast<uint64_t>(clusters)));
      for (int64_t t = 0; t < d; ++t)
        v[static_cast<std::size_t>(i * d + t)] =
            centres[static_cast<std::size_t>(c * d + t)] + scale * rng.normal();
    }
  }
  imgsim::similarity::normalize_rows(n, d, v.data());
  return v;
}

std::vector<float> random_unit(int64_t n, int64_t d, uint64_t seed) {
  std::vector<float> v(static_cast<std::size_t>(n * d));
  // Rows from independent streams, filled in parallel: 128M normals take a while otherwise.
  const int64_t blocks = 64;
#pragma omp parallel for
  for (int64_t b = 0; b < blocks; ++b) {
    imgsim::Rng rng(seed * 1000003 + static_cast<uint64_t>(b));
    for (int64_t i = n * b / blocks; i < n * (b + 1) / blocks; ++i)
      for (int64_t t = 0; t < d; ++t) v[static_cast<std::size_t>(i * d + t)] = rng.normal();
  }
  imgsim::similarity::normalize_rows(n, d, v.data());
  return v;
}

// Fraction of `truth`'s top-k ids found in `got`'s top-k.
double recall(const std::vector<int64_t>& truth, const std::vector<int64_t>& got, int64_t nq,
              int64_t k) {
  int64_t hit = 0;
  for (int64_t i = 0; i < nq; ++i) {
    const auto b = truth.begin() + i * k, e = b + k;
    for (int64_t j = 0; j < k; ++j)
      hit += std::find(b, e, got[static_cast<std::size_t>(i * k + j)]) != e;
  }
  return static_cast<double>(hit) / static_cast<double>(nq * k);
}

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 1000000, d = 128, k = 10, nq = 1000, single = 40, hnsw_n = -1, hnsw_m = 16, efc = 100;
  int threads = 2, reps = 3, blas_threshold = -1;
  int64_t clusters = 0;
  float spread = 1.0f;
  bool hnsw = true;
  std::vector<int> efs = {32, 64, 128, 256};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "index_compare: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--n")
      n = std::atoll(next());
    else if (a == "--d")
      d = std::atoll(next());
    else if (a == "--k")
      k = std::atoll(next());
    else if (a == "--nq")
      nq = std::atoll(next());
    else if (a == "--single")
      single = std::atoll(next());
    else if (a == "--threads")
      threads = std::atoi(next());
    else if (a == "--reps")
      reps = std::atoi(next());
    else if (a == "--hnsw-n")
      hnsw_n = std::atoll(next());
    else if (a == "--hnsw-m")
      hnsw_m = std::atoll(next());
    else if (a == "--efc")
      efc = std::atoll(next());
    else if (a == "--ef")
      efs = parse_list(next());
    else if (a == "--no-hnsw")
      hnsw = false;
    else if (a == "--faiss-blas-threshold")
      blas_threshold = std::atoi(next());
    else if (a == "--clusters")
      clusters = std::atoll(next());
    else if (a == "--spread")
      spread = static_cast<float>(std::atof(next()));
    else {
      std::fprintf(stderr, "index_compare: unknown option %s (see the comment at the top)\n",
                   a.c_str());
      return 2;
    }
  }
  if (hnsw_n < 0 || hnsw_n > n) hnsw_n = n;
  imgsim::set_num_threads(threads);
  omp_set_num_threads(threads);
  if (blas_threshold >= 0) faiss::distance_compute_blas_threshold = blas_threshold;

  std::printf(
      "n %ld, d %ld, k %ld, threads %d, imgsim ISA %s (kernel %s), faiss BLAS threshold %d\n",
      static_cast<long>(n), static_cast<long>(d), static_cast<long>(k), threads,
      imgsim::to_string(imgsim::active_isa()), imgsim::kernels::distance_kernels().ip_tile_name,
      faiss::distance_compute_blas_threshold);
  double t0 = now();
  std::vector<float> x, q;
  if (clusters > 0) {
    const auto centres = random_unit(clusters, d, 3);
    x = clustered_unit(n, d, clusters, spread, centres, 1);
    q = clustered_unit(nq, d, clusters, spread, centres, 2);
    std::printf("clustered data: %ld clusters, spread %.2f\n", static_cast<long>(clusters),
                static_cast<double>(spread));
  } else {
    x = random_unit(n, d, 1);
    q = random_unit(nq, d, 2);
  }
  std::printf("data: %.1f s\n", now() - t0);

  t0 = now();
  FlatIndex flat(d, Metric::inner_product);
  flat.add(n, x.data());
  const double t_add_imgsim = now() - t0;
  t0 = now();
  faiss::IndexFlatIP fidx(d);
  fidx.add(n, x.data());
  std::printf("add: imgsim %.2f s, faiss %.2f s\n", t_add_imgsim, now() - t0);

  // Single queries, interleaved.
  std::vector<double> s_img, s_fai, s_img_cpu, s_fai_cpu, s_plain, s_plain_cpu;
  FlatIndex plain(d, Metric::inner_product, /*half_prefilter=*/false);
  plain.add(n, x.data());
  std::vector<int64_t> ids1(static_cast<std::size_t>(single * k)), fids1(ids1.size());
  std::vector<float> sc1(ids1.size()), fsc1(ids1.size());
  for (int r = 0; r < reps; ++r) {
    t0 = now();
    double c0 = cpu_now();
    for (int64_t i = 0; i < single; ++i)
      flat.search(1, q.data() + i * d, k, sc1.data() + i * k, ids1.data() + i * k);
    s_img.push_back((now() - t0) / static_cast<double>(single));
    s_img_cpu.push_back((cpu_now() - c0) / static_cast<double>(single));
    t0 = now();
    c0 = cpu_now();
    for (int64_t i = 0; i < single; ++i)
      fidx.search(1, q.data() + i * d, k, fsc1.data() + i * k, fids1.data() + i * k);
    s_fai.push_back((now() - t0) / static_cast<double>(single));
    s_fai_cpu.push_back((cpu_now() - c0) / static_cast<double>(single));
    t0 = now();
    c0 = cpu_now();
    for (int64_t i = 0; i < single; ++i)
      plain.search(1, q.data() + i * d, k, sc1.data() + i * k, ids1.data() + i * k);
    s_plain.push_back((now() - t0) / static_cast<double>(single));
    s_plain_cpu.push_back((cpu_now() - c0) / static_cast<double>(single));
  }
  std::printf(
      "exact, 1 query per call:  imgsim %8.3f ms/query   faiss %8.3f ms/query   "
      "faiss/imgsim %.2f   top-%ld agreement %.4f\n",
      1e3 * median(s_img), 1e3 * median(s_fai), median(s_fai) / median(s_img), static_cast<long>(k),
      recall(fids1, ids1, single, k));
  std::printf("  CPU time (all threads):  imgsim %8.3f ms/query   faiss %8.3f ms/query\n",
              1e3 * median(s_img_cpu), 1e3 * median(s_fai_cpu));
  std::printf("  imgsim without the half-size prefilter: %8.3f ms/query (CPU %8.3f)\n",
              1e3 * median(s_plain), 1e3 * median(s_plain_cpu));
  std::fflush(stdout);

  // Batched, interleaved.
  std::vector<double> b_img, b_fai, b_img_cpu, b_fai_cpu;
  std::vector<int64_t> fids(static_cast<std::size_t>(nq * k));
  std::vector<float> fsc(fids.size());
  SearchResult exact;
  for (int r = 0; r < reps; ++r) {
    t0 = now();
    double c0 = cpu_now();
    exact = flat.search(nq, q.data(), k);
    b_img.push_back((now() - t0) / static_cast<double>(nq));
    b_img_cpu.push_back((cpu_now() - c0) / static_cast<double>(nq));
    t0 = now();
    c0 = cpu_now();
    fidx.search(nq, q.data(), k, fsc.data(), fids.data());
    b_fai.push_back((now() - t0) / static_cast<double>(nq));
    b_fai_cpu.push_back((cpu_now() - c0) / static_cast<double>(nq));
  }
  std::printf(
      "exact, %ld queries/call:  imgsim %8.3f ms/query   faiss %8.3f ms/query   "
      "faiss/imgsim %.2f   top-%ld agreement %.4f\n",
      static_cast<long>(nq), 1e3 * median(b_img), 1e3 * median(b_fai),
      median(b_fai) / median(b_img), static_cast<long>(k), recall(fids, exact.ids, nq, k));
  std::printf("  CPU time (all threads):  imgsim %8.3f ms/query   faiss %8.3f ms/query\n",
              1e3 * median(b_img_cpu), 1e3 * median(b_fai_cpu));
  std::printf("  imgsim batched: %.1f GFLOP/s (2 n d per query)\n",
              2.0 * static_cast<double>(n * d) / median(b_img) * 1e-9);
  std::fflush(stdout);

  if (!hnsw) return 0;
  // HNSW on the first hnsw_n vectors, against exact search over the same vectors.
  SearchResult truth = exact;
  FlatIndex sub(d, Metric::inner_product);
  if (hnsw_n != n) {
    sub.add(hnsw_n, x.data());
    truth = sub.search(nq, q.data(), k);
  }
  const double exact_ms = 1e3 * (hnsw_n == n ? median(b_img) : 0.0);
  t0 = now();
  HnswIndex h(d, {.M = hnsw_m, .ef_construction = efc, .ef_search = 64, .seed = 100},
              Metric::inner_product);
  h.add(hnsw_n, x.data());
  std::printf("hnsw: %ld vectors, M %ld, ef_construction %ld: build %.1f s\n",
              static_cast<long>(hnsw_n), static_cast<long>(hnsw_m), static_cast<long>(efc),
              now() - t0);
  for (int ef : efs) {
    h.set_ef_search(ef);
    std::vector<double> t;
    SearchResult r;
    for (int rep = 0; rep < reps; ++rep) {
      t0 = now();
      r = h.search(nq, q.data(), k);
      t.push_back((now() - t0) / static_cast<double>(nq));
    }
    std::printf(
        "hnsw ef %4d: recall@%ld %.4f   %.4f ms/query (batched %ld)%s\n", ef, static_cast<long>(k),
        recall(truth.ids, r.ids, nq, k), 1e3 * median(t), static_cast<long>(nq),
        exact_ms > 0 ? ("   exact/hnsw " + std::to_string(exact_ms / (1e3 * median(t)))).c_str()
                     : "");
  }
  return 0;
}
