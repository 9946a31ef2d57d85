#include "formats/atomic_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <unistd.h>

#include "base/error.h"

namespace archlens {

namespace fs = std::filesystem;

void writeFileAtomic(const fs::path& path, std::string_view bytes)
{
    std::random_device rd;
    const fs::path tmp = path.string() + ".tmp-" + std::to_string(rd());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        throw Error(ErrorCode::Io, std::string("cannot create file: ") + std::strerror(errno), path.string());
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw Error(ErrorCode::Io, std::string("write failed: ") + std::strerror(err), path.string());
        }
        done += size_t(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw Error(ErrorCode::Io, std::string("flush failed: ") + std::strerror(err), path.string());
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw Error(ErrorCode::Io, std::string("rename failed: ") + std::strerror(err), path.string());
    }
}

} // namespace archlens
