// Shared helpers of the imgsim program (common.hpp).
#include "common.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <system_error>

#include "imgsim/error.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "progress.hpp"

#ifndef IMGSIM_SOURCE_MODEL
#define IMGSIM_SOURCE_MODEL ""
#endif
#ifndef IMGSIM_INSTALL_DATADIR
#define IMGSIM_INSTALL_DATADIR "share"
#endif
#ifndef IMGSIM_INSTALL_BINDIR
#define IMGSIM_INSTALL_BINDIR "bin"
#endif

namespace fs = std::filesystem;

namespace imgsim::cli {

Common& common() {
  static Common c;
  return c;
}

void add_model_option(CLI::App& sub) {
  sub.add_option("-m,--model", common().model,
                 "model file (default: $IMGSIM_MODEL, else the shipped models/default.imgsim)")
      ->check(CLI::Validator(
          [](std::string& path) {
            return path.empty() ? std::string("empty path") : std::string();
          },
          "FILE"));
}

void add_threads_option(CLI::App& sub) {
  sub.add_option("-t,--threads", common().threads,
                 "worker threads (default: $IMGSIM_NUM_THREADS or all cores)")
      ->check(CLI::Range(1, 4096));
}

void add_json_flag(CLI::App& sub, const std::string& what) {
  sub.add_flag("--json", common().json, what);
}

void add_quiet_flag(CLI::App& sub) {
  sub.add_flag("-q,--quiet", common().quiet, "no progress display");
}

void add_batch_option(CLI::App& sub) {
  sub.add_option("--batch", common().batch, "images per model call")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
}

namespace {

CLI::Validator number_check(bool strict) {
  return CLI::Validator(
      [strict](std::string& text) -> std::string {
        double v = 0.0;
        std::size_t used = 0;
        try {
          v = std::stod(text, &used);
        } catch (const std::exception&) {
          return "'" + text + "' is not a number";
        }
        if (used != text.size() || !std::isfinite(v)) return "'" + text + "' is not a number";
        if (strict ? !(v > 0) : !(v >= 0))
          return "must be " + std::string(strict ? "> 0" : ">= 0") + ", got " + text;
        return "";
      },
      strict ? "POSITIVE" : "NON-NEGATIVE");
}

}  // namespace

CLI::Validator positive() {
  return number_check(true);
}
CLI::Validator non_negative() {
  return number_check(false);
}

void apply_common() {
  if (common().threads > 0) set_num_threads(common().threads);
  Progress::set_enabled(!common().quiet);
}

namespace {

std::string executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  return exe.parent_path().string();
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

}  // namespace

std::string resolve_model_path() {
  if (!common().model.empty()) return common().model;
  if (const char* env = std::getenv("IMGSIM_MODEL"); env && *env) return env;
  std::vector<fs::path> tried;
  const std::string dir = executable_dir();
  if (!dir.empty()) {
    // <prefix>/bin/imgsim -> <prefix>/share/imgsim/models/default.imgsim
    fs::path bindir = IMGSIM_INSTALL_BINDIR;
    fs::path prefix = fs::path(dir);
    for (auto it = bindir.begin(); it != bindir.end(); ++it) prefix = prefix.parent_path();
    fs::path datadir = IMGSIM_INSTALL_DATADIR;
    tried.push_back((datadir.is_absolute() ? datadir : prefix / datadir) / "imgsim" / "models" /
                    "default.imgsim");
  }
  if (*IMGSIM_SOURCE_MODEL) tried.emplace_back(IMGSIM_SOURCE_MODEL);
  for (const fs::path& p : tried)
    if (is_file(p)) return p.lexically_normal().string();
  std::string where;
  for (const fs::path& p : tried)
    where += (where.empty() ? "" : ", ") + p.lexically_normal().string();
  throw Error(
      "no model: pass --model FILE or set IMGSIM_MODEL, or train the default one with "
      "`imgsim train ... -o models/default.imgsim` (see docs/cli.md); looked in " +
      (where.empty() ? std::string("nowhere") : where));
}

similarity::Embedder load_embedder() {
  return similarity::Embedder(resolve_model_path());
}

std::vector<std::string> collect_images(const std::vector<std::string>& inputs,
                                        std::vector<data::SkippedFile>& skipped) {
  std::vector<std::string> out;
  for (const std::string& in : inputs) {
    std::error_code ec;
    const fs::path p = fs::absolute(fs::path(in), ec).lexically_normal();
    const fs::file_status st = fs::status(p, ec);
    if (ec || !fs::exists(st)) throw IoError("no such file or folder: " + in);
    if (!fs::is_directory(st)) {
      out.push_back(p.string());
      continue;
    }
    std::vector<std::string> found;
    fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec);
    if (ec) throw IoError("cannot list folder " + in + ": " + ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) {
        skipped.push_back({it->path().string(), "cannot list: " + ec.message()});
        ec.clear();
        break;
      }
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      std::error_code fe;
      if (it->is_directory(fe)) continue;
      if (data::ImageFolderDataset::is_image_extension(name)) found.push_back(it->path().string());
    }
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

void warn(const std::string& message) {
  std::cerr << "imgsim: warning: " << message << '\n';
}

void warn_skipped(const std::vector<data::SkippedFile>& skipped) {
  std::size_t shown = 0;
  for (const auto& s : skipped) {
    if (shown == 20) {
      warn("... and " + std::to_string(skipped.size() - shown) + " more files skipped");
      break;
    }
    // One line each: the reason may hold a newline in theory.
    std::string reason = s.reason;
    // Decoder messages often start with the path already.
    if (reason.rfind(s.path + ": ", 0) == 0) reason.erase(0, s.path.size() + 2);
    std::replace(reason.begin(), reason.end(), '\n', ' ');
    warn("skipped " + s.path + ": " + reason);
    ++shown;
  }
}

json skipped_json(const std::vector<data::SkippedFile>& skipped) {
  json a = json::array();
  for (const auto& s : skipped) a.push_back({{"path", s.path}, {"reason", s.reason}});
  return a;
}

similarity::EmbedResult embed_with_progress(similarity::Embedder& e,
                                            const std::vector<std::string>& paths,
                                            const std::string& label) {
  Progress bar(label, static_cast<int64_t>(paths.size()));
  similarity::EmbedOptions opt;
  opt.batch_size = common().batch;
  opt.progress = [&](int64_t done, int64_t) { bar.update(done); };
  similarity::EmbedResult r = e.embed_files(paths, opt);
  bar.finish(r.skipped.empty() ? "" : std::to_string(r.skipped.size()) + " skipped");
  warn_skipped(r.skipped);
  return r;
}

void write_text(const std::string& path, const std::string& content) {
  if (path == "-") {
    std::cout << content << std::flush;
    return;
  }
  const fs::path target(path);
  fs::path tmp = target;
  tmp += ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw IoError("cannot write " + path + ": cannot create " + tmp.string());
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
    f.flush();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw IoError("cannot write " + path + " (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw IoError("cannot write " + path + ": " + ec.message());
  }
}

void write_npy(const std::string& path, const float* data, int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of
  // 64 bytes and ended by '\n'.
  const std::size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  const auto hlen = static_cast<uint16_t>(header.size());
  out += static_cast<char>(hlen & 0xff);
  out += static_cast<char>(hlen >> 8);
  out += header;
  const std::size_t bytes = static_cast<std::size_t>(rows * cols) * sizeof(float);
  const std::size_t at = out.size();
  out.resize(at + bytes);
  // x86-64 is little-endian, as '<f4' says.
  if (bytes) std::memcpy(out.data() + at, data, bytes);
  write_text(path, out);
}

std::string base64(const std::vector<unsigned char>& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint32_t{bytes[i]} << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string fixed6(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

}  // namespace imgsim::cli
