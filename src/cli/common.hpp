// Shared pieces of the imgsim command-line program: options every subcommand takes, model
// lookup, collecting image files, output helpers (JSON, .npy, CSV, HTML) and warnings.
// docs/cli.md describes the program.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "imgsim/data/image_folder.hpp"
#include "imgsim/similarity/embedder.hpp"

namespace imgsim::cli {

using json = nlohmann::ordered_json;

// A mistake in how the program was called (exit status 2, like a parse error).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Options shared by the subcommands; each subcommand registers the ones it uses.
struct Common {
  std::string model;   // --model; empty: resolve_model_path()
  int threads = 0;     // --threads; 0: imgsim's default (IMGSIM_NUM_THREADS or all cores)
  bool json = false;   // --json
  bool quiet = false;  // --quiet: no progress display
  int64_t batch = 64;  // --batch (images per model call)
};
Common& common();

void add_model_option(CLI::App& sub);
void add_threads_option(CLI::App& sub);
void add_json_flag(CLI::App& sub, const std::string& what = "print machine-readable JSON");
void add_quiet_flag(CLI::App& sub);
void add_batch_option(CLI::App& sub);
// Option checks with short messages ("must be > 0").
CLI::Validator positive();
CLI::Validator non_negative();
// Applies --threads and --quiet; call first in every command.
void apply_common();

// --model, else $IMGSIM_MODEL, else models/default.imgsim in the installed share folder next
// to the executable (<prefix>/share/imgsim/models), else in the source tree this program was
// built from. Throws imgsim::Error with one line saying how to get a model if none exists.
std::string resolve_model_path();
// resolve_model_path() loaded as an Embedder.
similarity::Embedder load_embedder();

// Image files named by `inputs`: files as given, folders searched recursively for the image
// extensions of ImageFolderDataset (hidden entries skipped), each folder's files sorted. Paths
// are made absolute and normal. A path that does not exist throws IoError. Entries of a folder
// that cannot be listed are added to `skipped`.
std::vector<std::string> collect_images(const std::vector<std::string>& inputs,
                                        std::vector<data::SkippedFile>& skipped);

// "imgsim: warning: <message>" on stderr.
void warn(const std::string& message);
// One warning line per skipped file (a summary after 20).
void warn_skipped(const std::vector<data::SkippedFile>& skipped);
json skipped_json(const std::vector<data::SkippedFile>& skipped);

// Embeds files with a progress display labelled `label`; unreadable files are warned about and
// returned in result.skipped (prepended with `already_skipped`).
similarity::EmbedResult embed_with_progress(similarity::Embedder& e,
                                            const std::vector<std::string>& paths,
                                            const std::string& label);

// Writes `content` to `path` through a temporary file renamed into place ("-": stdout).
void write_text(const std::string& path, const std::string& content);
// NumPy .npy version 1.0, little-endian float32, shape (rows, cols), C order.
void write_npy(const std::string& path, const float* data, int64_t rows, int64_t cols);

std::string base64(const std::vector<unsigned char>& bytes);
std::string html_escape(const std::string& s);
// A CSV field, quoted when it holds a comma, quote, CR or LF (RFC 4180).
std::string csv_field(const std::string& s);
// %.6f
std::string fixed6(double v);

// The subcommands (one file each).
void add_compare_command(CLI::App& app);
void add_embed_command(CLI::App& app);
void add_index_command(CLI::App& app);
void add_search_command(CLI::App& app);
void add_dedup_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);

}  // namespace imgsim::cli
