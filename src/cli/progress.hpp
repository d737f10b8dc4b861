// Progress display for long work, on stderr. On a terminal: one line redrawn in place at most
// ten times a second (bar, percentage, count, rate, time left). Otherwise (a pipe or a log
// file): a plain line at every tenth of the work and a final line, so logs stay readable.
// Disabled with --quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace imgsim::cli {

class Progress {
 public:
  // `total` steps of `unit` ("images", "queries", "steps").
  Progress(std::string label, int64_t total, std::string unit = "images");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // `done` of total finished; `status` is appended (e.g. "loss 0.1234").
  void update(int64_t done, const std::string& status = "");
  // Final line (once; the destructor calls it if needed).
  void finish(const std::string& status = "");

  // Global switches: off with --quiet; live redraw only when stderr is a terminal.
  static void set_enabled(bool enabled);
  static bool enabled();
  static bool live();

 private:
  using Clock = std::chrono::steady_clock;
  std::string line(int64_t done, const std::string& status, bool final) const;
  std::string label_, unit_;
  int64_t total_;
  int64_t done_ = 0;
  int next_tenth_ = 1;
  bool finished_ = false;
  std::size_t last_len_ = 0;
  Clock::time_point start_, last_draw_;
  std::string status_;
};

std::string format_duration(double seconds);

}  // namespace imgsim::cli
