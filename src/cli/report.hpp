// The HTML report of `imgsim dedup --report`: one self-contained page (no external files, no
// scripts; thumbnails embedded as JPEG data: URIs) showing each near-duplicate group's images
// side by side with their scores and file names. docs/cli.md, "dedup".
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "imgsim/data/image_folder.hpp"
#include "imgsim/similarity/dedup.hpp"

namespace imgsim::cli {

struct ReportOptions {
  std::string model;             // model file named in the header
  float threshold = 0.0f;        // the grouping threshold
  std::string threshold_source;  // where it came from ("model", "--threshold")
  int64_t k = 10;                // neighbours examined per image
  int64_t images = 0;            // images embedded
  int thumb = 160;               // thumbnail side, pixels
  int max_thumbs = 24;           // thumbnails per group; further members are listed by name
  std::string generator;         // "imgsim 0.1.0", shown in the footer
};

// A JPEG thumbnail of the image at most `side` pixels on its longer side (upright per EXIF,
// shrunk with the box filter), as a data: URI; "" if the image cannot be read.
std::string thumbnail_data_uri(const std::string& path, int side, int quality = 80);

// Makes the data: URI of one image ("" when unreadable); called from several threads at once.
using Thumbnailer = std::function<std::string(const std::string& path)>;

// The page for `groups` (members are indexes into `paths`). Thumbnails are made with
// `thumbnail` on imgsim's threads, at most options.max_thumbs per group. File names are
// HTML-escaped; shown relative to the folder common to the grouped images (full path on hover).
std::string make_report(const std::vector<similarity::DuplicateGroup>& groups,
                        const std::vector<std::string>& paths,
                        const std::vector<data::SkippedFile>& skipped, const ReportOptions& options,
                        const Thumbnailer& thumbnail);

}  // namespace imgsim::cli
