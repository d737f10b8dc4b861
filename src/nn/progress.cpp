#include "nn/progress.hpp"

#include <cmath>
#include <cstdio>
#include <ostream>

namespace imgsim::nn::detail {

std::string format_seconds(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  auto t = static_cast<long long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", t / 60, t % 60);
  return buf;
}

namespace {
std::string metrics_str(const std::map<std::string, double>& m, const char* prefix = "") {
  std::string s;
  char buf[64];
  for (const auto& [k, v] : m) {
    std::snprintf(buf, sizeof buf, "  %s%s %.4f", prefix, k.c_str(), v);
    s += buf;
  }
  return s;
}
}  // namespace

Progress::Progress(std::ostream& os, int verbose, bool live, int epochs)
    : os_(os), verbose_(verbose), live_(live), epochs_(epochs) {}

void Progress::begin_epoch(int epoch, int64_t steps) {
  epoch_ = epoch;
  steps_ = steps;
  next_plain_ = 0;
  start_ = last_draw_ = Clock::now();
  last_len_ = 0;
}

void Progress::update(int64_t done, int64_t images, double loss,
                      const std::map<std::string, double>& metrics) {
  if (verbose_ != 1) return;
  const auto now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double ips = elapsed > 0 ? static_cast<double>(images) / elapsed : 0.0;
  const double eta =
      done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(steps_ - done) : NAN;
  char head[160];
  if (live_) {
    if (done < steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int kWidth = 24;
    int fill = steps_ > 0 ? static_cast<int>(kWidth * done / steps_) : kWidth;
    std::string bar(static_cast<std::size_t>(fill), '=');
    if (fill < kWidth) bar += '>';
    bar.resize(kWidth, ' ');
    std::snprintf(head, sizeof head, "Epoch %d/%d [%s] %lld/%lld  loss %.4f", epoch_ + 1, epochs_,
                  bar.c_str(), static_cast<long long>(done), static_cast<long long>(steps_), loss);
    std::string line = head + metrics_str(metrics);
    char tail[96];
    std::snprintf(tail, sizeof tail, "  %.0f img/s  ETA %s", ips, format_seconds(eta).c_str());
    line += tail;
    std::size_t len = line.size();
    if (len < last_len_) line.append(last_len_ - len, ' ');
    last_len_ = len;
    os_ << '\r' << line << std::flush;
  } else {
    if (done < next_plain_ && done < steps_) return;
    next_plain_ = done + std::max<int64_t>(1, steps_ / 10);
    std::snprintf(head, sizeof head, "epoch %d/%d step %lld/%lld loss %.4f", epoch_ + 1, epochs_,
                  static_cast<long long>(done), static_cast<long long>(steps_), loss);
    char tail[96];
    std::snprintf(tail, sizeof tail, " %.0f img/s eta %s", ips, format_seconds(eta).c_str());
    os_ << head << metrics_str(metrics) << tail << '\n' << std::flush;
  }
}

void Progress::end_epoch(double seconds, double ips, double loss,
                         const std::map<std::string, double>& metrics, bool has_val,
                         double val_loss, const std::map<std::string, double>& val_metrics) {
  if (verbose_ == 0) return;
  if (verbose_ == 1 && live_) os_ << '\r' << std::string(last_len_, ' ') << '\r';
  char head[160];
  std::snprintf(head, sizeof head, "Epoch %d/%d  %.1fs  %.0f img/s  loss %.4f", epoch_ + 1, epochs_,
                seconds, ips, loss);
  os_ << head << metrics_str(metrics);
  if (has_val) {
    char v[64];
    std::snprintf(v, sizeof v, "  val_loss %.4f", val_loss);
    os_ << v << metrics_str(val_metrics, "val_");
  }
  os_ << '\n' << std::flush;
}

}  // namespace imgsim::nn::detail
