// Progress display: live bar on a terminal, plain lines otherwise (progress.hpp).
#include "progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <utility>

namespace imgsim::cli {

namespace {

bool g_enabled = true;

bool stderr_is_terminal() {
  static const bool tty = [] {
    if (!::isatty(2)) return false;
    const char* term = std::getenv("TERM");
    return !(term && std::strcmp(term, "dumb") == 0);
  }();
  return tty;
}

}  // namespace

std::string format_duration(double s) {
  if (!(s >= 0.0) || s > 1e7) return "?";
  const auto t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else if (s >= 10.0)
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

void Progress::set_enabled(bool enabled) {
  g_enabled = enabled;
}
bool Progress::enabled() {
  return g_enabled;
}
bool Progress::live() {
  return g_enabled && stderr_is_terminal();
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(std::max<int64_t>(total, 0)) {
  start_ = last_draw_ = Clock::now();
}

Progress::~Progress() {
  if (finished_) return;
  if (std::uncaught_exceptions() > 0) {
    // Unwinding to an error message: end a live line so the message starts a fresh one, and
    // add nothing else.
    finished_ = true;
    if (live() && last_len_ > 0) std::cerr << '\n' << std::flush;
    return;
  }
  finish(status_);
}

std::string Progress::line(int64_t done, const std::string& status, bool final) const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  char buf[256];
  std::string s = label_;
  if (live() && !final) {
    constexpr int kWidth = 24;
    const int fill = static_cast<int>(frac * kWidth);
    s += " [" + std::string(static_cast<std::size_t>(fill), '#') +
         std::string(static_cast<std::size_t>(kWidth - fill), '.') + "]";
  } else {
    s += ":";
  }
  std::snprintf(buf, sizeof buf, " %3.0f%% %lld/%lld %s", frac * 100.0,
                static_cast<long long>(done), static_cast<long long>(total_), unit_.c_str());
  s += buf;
  if (final) {
    std::snprintf(buf, sizeof buf, " in %s (%.1f/s)", format_duration(elapsed).c_str(), rate);
    s += buf;
  } else if (rate > 0 && done > 0) {
    const double left = static_cast<double>(total_ - done) / rate;
    std::snprintf(buf, sizeof buf, " %.1f/s, %s left", rate, format_duration(left).c_str());
    s += buf;
  }
  if (!status.empty()) s += ", " + status;
  return s;
}

void Progress::update(int64_t done, const std::string& status) {
  done_ = std::clamp<int64_t>(done, 0, total_);
  status_ = status;
  if (!g_enabled || finished_) return;
  const auto now = Clock::now();
  if (live()) {
    if (done_ < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    std::string s = line(done_, status, false);
    const std::size_t len = s.size();
    if (len < last_len_) s += std::string(last_len_ - len, ' ');
    last_len_ = len;
    std::cerr << '\r' << s << std::flush;
    return;
  }
  // Plain lines at each tenth.
  if (total_ <= 0) return;
  const int tenth = static_cast<int>(done_ * 10 / total_);
  if (tenth >= next_tenth_ && done_ < total_) {
    next_tenth_ = tenth + 1;
    std::cerr << line(done_, status, false) << '\n' << std::flush;
  }
}

void Progress::finish(const std::string& status) {
  if (finished_) return;
  finished_ = true;
  if (!status.empty()) status_ = status;
  if (!g_enabled) return;
  std::string s = line(done_, status_, true);
  if (live()) {
    const std::size_t len = s.size();
    if (len < last_len_) s += std::string(last_len_ - len, ' ');
    std::cerr << '\r' << s << '\n' << std::flush;
  } else {
    std::cerr << s << '\n' << std::flush;
  }
}

}  // namespace imgsim::cli
