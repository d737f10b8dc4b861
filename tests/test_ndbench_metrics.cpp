// Near-duplicate benchmark metrics and files (tools/ndbench_metrics.hpp, tools/ndbench_io.hpp,
// docs/ndbench.md), on small cases worked out by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../tools/ndbench_io.hpp"
#include "../tools/ndbench_metrics.hpp"
#include "data_test_util.hpp"

using imgsim::ndbench::evaluate;
using imgsim::ndbench::Metrics;
using imgsim::ndbench::ScoredPair;
using imgsim::testing::TempDir;

TEST_CASE("ndbench: micro-AP, recall@1 and recall at 90% precision", "[ndbench]") {
  // Three queries over three items; q0 -> i0, q1 -> i1, q2 has no match (2 positives).
  const std::vector<int64_t> match = {0, 1, -1};
  const std::vector<ScoredPair> pairs = {
      {0, 0, 0.9}, {2, 1, 0.8}, {1, 1, 0.7}, {0, 2, 0.6}, {1, 0, 0.5}};
  // Ranked: 0.9 right (P 1, R 1/2), 0.8 wrong (P 1/2), 0.7 right (P 2/3, R 1), then wrong ones.
  // AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
  const Metrics m = evaluate(pairs, match, 3);
  CHECK(m.queries == 3);
  CHECK(m.positives == 2);
  CHECK(m.pairs == 5);
  CHECK(m.micro_ap == Approx(5.0 / 6.0));
  CHECK(m.recall_at_1 == Approx(1.0));  // both queries rank their match first
  CHECK(m.recall_at_p90 == Approx(0.5));
  CHECK(m.threshold_at_p90 == 0.9);

  // The input order does not matter.
  std::vector<ScoredPair> reversed(pairs.rbegin(), pairs.rend());
  CHECK(evaluate(reversed, match, 3).micro_ap == Approx(5.0 / 6.0));

  SECTION("a subset of queries") {
    const Metrics q1 = evaluate(pairs, match, 3, {1});
    CHECK(q1.queries == 1);
    CHECK(q1.positives == 1);
    CHECK(q1.pairs == 2);
    CHECK(q1.micro_ap == Approx(1.0));
    CHECK(q1.recall_at_1 == Approx(1.0));
    CHECK(q1.recall_at_p90 == Approx(1.0));
    const Metrics q2 = evaluate(pairs, match, 3, {2});
    CHECK(q2.positives == 0);
    CHECK(std::isnan(q2.micro_ap));
    CHECK(std::isnan(q2.recall_at_1));
  }
}

TEST_CASE("ndbench: ties form one step and split recall@1", "[ndbench]") {
  const std::vector<int64_t> match = {0, 1};
  // 0.5: q0's match and a wrong item tie (1 right of 2: P 1/2, R 1/2); 0.2: q1's match
  // (P 2/3, R 1). AP = 1/2 * 1/2 + 1/2 * 2/3 = 7/12, whatever the order of the tie.
  std::vector<ScoredPair> pairs = {{0, 0, 0.5}, {0, 1, 0.5}, {1, 1, 0.2}};
  const Metrics a = evaluate(pairs, match, 2);
  std::swap(pairs[0], pairs[1]);
  const Metrics b = evaluate(pairs, match, 2);
  CHECK(a.micro_ap == Approx(7.0 / 12.0));
  CHECK(b.micro_ap == a.micro_ap);
  // q0's match shares the top score with one other item: 1/2; q1: 1.
  CHECK(a.recall_at_1 == Approx(0.75));
  // Precision never reaches 0.9 at a threshold that finds a match.
  CHECK(a.recall_at_p90 == 0.0);
  CHECK(std::isnan(a.threshold_at_p90));
}

TEST_CASE("ndbench: queries without a match lower precision, unscored matches recall",
          "[ndbench]") {
  SECTION("a confident false positive of a query without a match") {
    // q1 has no match but scores i0 at 0.9, above q0's right answer at 0.8: P = 1/2 there.
    const Metrics m = evaluate({{1, 0, 0.9}, {0, 0, 0.8}}, {0, -1}, 1);
    CHECK(m.micro_ap == Approx(0.5));
    CHECK(m.recall_at_1 == Approx(1.0));  // recall@1 counts only queries with a match
    CHECK(m.recall_at_p90 == 0.0);
  }
  SECTION("a query with a match but no scored pair") {
    const Metrics m = evaluate({{0, 0, 0.9}}, {0, 1}, 2);
    CHECK(m.micro_ap == Approx(0.5));
    CHECK(m.recall_at_1 == Approx(0.5));
    CHECK(m.recall_at_p90 == Approx(0.5));
  }
  SECTION("precision 0.9 reached lower down") {
    // Ten queries, each with its match; nine right answers, then one wrong pair, then the
    // tenth right one: P = 9/9 at R 0.9, 10/11 = 0.909 at R 1.
    std::vector<int64_t> match(10);
    std::vector<ScoredPair> pairs;
    for (int64_t q = 0; q < 10; ++q) {
      match[static_cast<std::size_t>(q)] = q;
      pairs.push_back({q, q, q < 9 ? 1.0 - 0.01 * static_cast<double>(q) : 0.5});
    }
    pairs.push_back({9, 0, 0.6});
    const Metrics m = evaluate(pairs, match, 10);
    CHECK(m.recall_at_p90 == Approx(1.0));
    CHECK(m.threshold_at_p90 == 0.5);
    CHECK(m.micro_ap == Approx(0.9 + 0.1 * 10.0 / 11.0));
    CHECK(m.recall_at_1 == Approx(0.9));  // q9's best item is the wrong one
  }
}

TEST_CASE("ndbench: a pair listed twice keeps its highest score", "[ndbench]") {
  // q0's match at 0.2 and again at 0.95, a wrong item at 0.9: the match ranks first.
  const Metrics m = evaluate({{0, 0, 0.2}, {0, 1, 0.9}, {0, 0, 0.95}}, {0}, 2);
  CHECK(m.pairs == 2);
  CHECK(m.micro_ap == Approx(1.0));
  CHECK(m.recall_at_1 == Approx(1.0));
}

TEST_CASE("ndbench: invalid input", "[ndbench]") {
  CHECK_THROWS_AS(evaluate({{2, 0, 0.5}}, {0, 1}, 2), std::invalid_argument);
  CHECK_THROWS_AS(evaluate({{0, 2, 0.5}}, {0, 1}, 2), std::invalid_argument);
  CHECK_THROWS_AS(evaluate({{0, 0, std::nan("")}}, {0, 1}, 2), std::invalid_argument);
  CHECK_THROWS_AS(evaluate({}, {0, 1}, 2, {5}), std::invalid_argument);
  CHECK_THROWS_AS(evaluate({}, {3}, 2), std::invalid_argument);
}

TEST_CASE("ndbench: CSV fields", "[ndbench]") {
  using imgsim::ndbench::csv_field;
  using imgsim::ndbench::parse_csv;
  CHECK(csv_field("plain") == "plain");
  CHECK(csv_field("a,b") == "\"a,b\"");
  CHECK(csv_field("text text=\"hi\"") == "\"text text=\"\"hi\"\"\"");

  const auto r = parse_csv("h1,h2,h3\r\nx,\"a,b\",\"say \"\"hi\"\"\"\n,,\n\"multi\nline\",2,3");
  REQUIRE(r.size() == 4);
  CHECK(r[0] == std::vector<std::string>{"h1", "h2", "h3"});
  CHECK(r[1] == std::vector<std::string>{"x", "a,b", "say \"hi\""});
  CHECK(r[2] == std::vector<std::string>{"", "", ""});
  CHECK(r[3] == std::vector<std::string>{"multi\nline", "2", "3"});
  const std::string edits = "text text=\"a, \"\"b\" anchor_x=0.5 | jpeg quality=20";
  CHECK(parse_csv(csv_field(edits) + "\n")[0][0] == edits);

  CHECK_THROWS_AS(parse_csv("a,\"b\n"), std::runtime_error);
  CHECK_THROWS_AS(parse_csv("a,b\"c\n"), std::runtime_error);
  CHECK_THROWS_AS(parse_csv("a,\"b\"c\n"), std::runtime_error);
}

TEST_CASE("ndbench: benchmark and prediction files", "[ndbench]") {
  TempDir dir;
  const auto put = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
  };
  put("db.csv",
      "db_id,db_file,role,source\nd0,db/d0.png,queried,a.jpg\nd1,db/d1.png,distractor,b.jpg\n");
  put("ground_truth.csv",
      "query_id,query_file,db_id,family,edits,source\n"
      "q0,queries/q0.png,d0,crop,crop keep_width=0.5,a.jpg\n"
      "q1,queries/q1.png,,combined,\"flip_h | text text=\"\"x,y\"\"\",c.jpg\n");
  const auto b = imgsim::ndbench::load_benchmark(dir.path());
  REQUIRE(b.queries.size() == 2);
  CHECK(b.queries[1].edits == "flip_h | text text=\"x,y\"");
  CHECK(b.matches() == std::vector<int64_t>{0, -1});

  put("p.csv", "query_id,db_id,score\nq0,d0,0.75\nq1,d1,-2e-1\n");
  const auto p = imgsim::ndbench::load_predictions(dir.path() / "p.csv", b);
  REQUIRE(p.size() == 2);
  CHECK(p[1].query == 1);
  CHECK(p[1].item == 1);
  CHECK(p[1].score == -0.2);

  put("bad1.csv", "query_id,db_id,score\nq9,d0,0.5\n");
  put("bad2.csv", "query_id,db_id,score\nq0,d0,high\n");
  put("bad3.csv", "query,db,score\nq0,d0,0.5\n");
  put("bad4.csv", "query_id,db_id,score\nq0,d0,inf\n");
  for (const char* f : {"bad1.csv", "bad2.csv", "bad3.csv", "bad4.csv"})
    CHECK_THROWS_AS(imgsim::ndbench::load_predictions(dir.path() / f, b), std::runtime_error);

  put("ground_truth.csv",
      "query_id,query_file,db_id,family,edits,source\nq0,queries/q0.png,d7,crop,crop,a.jpg\n");
  CHECK_THROWS_AS(imgsim::ndbench::load_benchmark(dir.path()), std::runtime_error);
}
