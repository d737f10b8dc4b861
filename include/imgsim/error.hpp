// imgsim error hierarchy. Every public function reports failure by throwing one of these;
// the library never calls exit() or abort(). Messages name the object and the values involved.
#pragma once

#include <stdexcept>
#include <string>

namespace imgsim {

// Base of every exception imgsim throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A tensor or layer received a shape it cannot handle. The message names both shapes.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A function argument is out of its documented range (negative size, unknown name, ...).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// Reading or writing a file failed at the operating-system level (missing, unreadable, disk full).
class IoError : public Error {
 public:
  using Error::Error;
};

// A file was read but its contents are not what the format requires
// (bad magic, wrong version, checksum mismatch, truncated record, hostile sizes).
class FormatError : public Error {
 public:
  using Error::Error;
};

// An operation was called in a state that does not allow it (fit before compile, ...).
class StateError : public Error {
 public:
  using Error::Error;
};

}  // namespace imgsim
