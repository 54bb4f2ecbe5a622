# Finds the OpenCV 4 modules vislint uses (core, imgproc, imgcodecs) from Debian's
# per-module -dev packages, which install headers and .so files but no OpenCVConfig.cmake
# (that comes with the libopencv-dev meta package and all of OpenCV's contrib modules).
find_path(OpenCVModules_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4)
set(_ocv_libs)
foreach(_m core imgproc imgcodecs)
  find_library(OpenCVModules_${_m}_LIBRARY NAMES opencv_${_m})
  list(APPEND _ocv_libs ${OpenCVModules_${_m}_LIBRARY})
endforeach()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OpenCVModules REQUIRED_VARS OpenCVModules_INCLUDE_DIR
  OpenCVModules_core_LIBRARY OpenCVModules_imgproc_LIBRARY OpenCVModules_imgcodecs_LIBRARY)
if(OpenCVModules_FOUND AND NOT TARGET OpenCV::modules)
  add_library(OpenCV::modules INTERFACE IMPORTED)
  set_target_properties(OpenCV::modules PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${OpenCVModules_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${_ocv_libs}")
endif()
