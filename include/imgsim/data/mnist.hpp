// Readers for the IDX format of MNIST and Fashion-MNIST (docs/data.md, "IDX files").
//
// An IDX file is a 4-byte magic number (0x00 0x00 type ndims), ndims big-endian uint32
// dimensions and then exactly prod(dims) elements. imgsim reads unsigned-byte files (type 0x08):
// images (magic 0x00000803, dims N x rows x cols) and labels (magic 0x00000801, dims N). Files
// may be gzip-compressed (as Debian's dataset-fashion-mnist installs them) or raw; zlib detects
// which. Every check failure throws FormatError naming the file: wrong magic, zero or hostile
// dimensions (more than kMaxIdxBytes of payload, refused before anything is allocated), a
// payload shorter or longer than the header promises (the message gives both byte counts) and
// corrupt gzip data (bad deflate stream or checksum). Missing or unreadable files throw IoError.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "imgsim/tensor.hpp"

namespace imgsim::data {

// Largest payload (elements = bytes) an IDX file may declare: 2 GiB.
inline constexpr int64_t kMaxIdxBytes = int64_t{1} << 31;

enum class Split { train, test };

struct LabeledImages {
  Tensor images;  // (N, 1, 28, 28) float in [0, 1]
  Tensor labels;  // (N) float class index in [0, 10)
};

// Images of an IDX3 ubyte file as (N, 1, rows, cols) floats, pixel / 255.
Tensor read_idx_images(const std::string& path);
// Labels of an IDX1 ubyte file as (N) floats holding the byte values.
Tensor read_idx_labels(const std::string& path);

// $IMGSIM_FASHION_MNIST_DIR when set and non-empty, otherwise /usr/share/datasets/fashion-mnist
// (where `apt-get install dataset-fashion-mnist` puts the files).
std::string default_fashion_mnist_dir();

// Loads {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from `dir` (the .gz name is tried
// first). Checks 28 x 28 images, as many labels as images and labels below 10 (FormatError).
// Missing files throw IoError telling how to install the dataset.
LabeledImages load_fashion_mnist(Split split, const std::string& dir = default_fashion_mnist_dir());

// The ten class names, indexed by label: "T-shirt/top", "Trouser", ..., "Ankle boot".
const std::vector<std::string>& fashion_mnist_class_names();

}  // namespace imgsim::data
