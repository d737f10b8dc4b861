// Training progress display for Sequential::fit (internal).
// On a terminal: one live line redrawn in place (at most 10 times a second). Otherwise: plain
// lines at about every tenth of an epoch, then an epoch summary, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>

namespace imgsim::nn::detail {

class Progress {
 public:
  // verbose: 0 silent, 1 live bar if `live`, else plain lines; 2 epoch lines only.
  Progress(std::ostream& os, int verbose, bool live, int epochs);
  void begin_epoch(int epoch, int64_t steps);
  void update(int64_t step_done, int64_t images_done, double loss,
              const std::map<std::string, double>& metrics);
  void end_epoch(double seconds, double images_per_s, double loss,
                 const std::map<std::string, double>& metrics, bool has_val, double val_loss,
                 const std::map<std::string, double>& val_metrics);

 private:
  using Clock = std::chrono::steady_clock;
  std::ostream& os_;
  int verbose_;
  bool live_;
  int epochs_;
  int epoch_ = 0;
  int64_t steps_ = 0;
  int64_t next_plain_ = 0;
  Clock::time_point start_, last_draw_;
  std::size_t last_len_ = 0;
};

std::string format_seconds(double s);

}  // namespace imgsim::nn::detail
