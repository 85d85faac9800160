#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "ringmaster/io/ring.h"
#include "socket_pair.h"

namespace ringmaster::io {
namespace {

// Submits what is queued and returns the result of the completion tagged `tag`.
int wait_for(Ring& ring, uint64_t tag) {
  for (int turn = 0; turn < 100; ++turn) {
    ring.submit_and_wait(100);
    int result = -1;
    bool found = false;
    ring.drain([&](io_uring_cqe* cqe) {
      if (cqe->user_data == tag) {
        result = cqe->res;
        found = true;
      }
    });
    if (found) return result;
  }
  ADD_FAILURE() << "no completion for tag " << tag;
  return -1;
}

TEST(RingRegisteredFiles, SendsThroughTheSlotNamedByTheDescriptor) {
  Ring ring(8);
  ASSERT_TRUE(ring.register_files(1024));
  SocketPair pair;
  ASSERT_TRUE(ring.registered(pair.ours));
  ring.install_file(&pair.ours);
  io_uring_sqe* sqe = ring.get_sqe();
  io_uring_prep_send(sqe, pair.ours, "hello", 5, 0);
  ring.use_registered(sqe, pair.ours);
  EXPECT_TRUE(sqe->flags & IOSQE_FIXED_FILE);
  io_uring_sqe_set_data64(sqe, 8);
  ASSERT_EQ(wait_for(ring, 8), 5);
  char buf[8] = {};
  ASSERT_EQ(::recv(pair.peer, buf, sizeof buf, 0), 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
}

TEST(RingRegisteredFiles, CloseWithRemovalEndsTheConnectionForThePeer) {
  Ring ring(8);
  ASSERT_TRUE(ring.register_files(1024));
  SocketPair pair;
  ring.install_file(&pair.ours);
  ring.submit();
  // The table holds its own reference: close(2) alone leaves the socket open...
  ring.remove_file(pair.ours);
  ::close(pair.ours);
  pair.ours = -1;
  char buf[1];
  EXPECT_EQ(::recv(pair.peer, buf, sizeof buf, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
  // ...and the queued release drops the last one, so the peer reads end of file.
  ring.submit();
  timeval limit{5, 0};
  ASSERT_EQ(::setsockopt(pair.peer, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
  EXPECT_EQ(::recv(pair.peer, buf, sizeof buf, 0), 0);
}

TEST(RingRegisteredFiles, DescriptorsBeyondTheTableStayPlain) {
  Ring ring(8);
  ASSERT_TRUE(ring.register_files(4));
  SocketPair pair;
  ASSERT_GE(pair.ours, 4);
  EXPECT_FALSE(ring.registered(pair.ours));
  ring.install_file(&pair.ours);  // nothing queued
  io_uring_sqe* sqe = ring.get_sqe();
  io_uring_prep_send(sqe, pair.ours, "x", 1, 0);
  ring.use_registered(sqe, pair.ours);
  EXPECT_FALSE(sqe->flags & IOSQE_FIXED_FILE);
  io_uring_sqe_set_data64(sqe, 16);
  EXPECT_EQ(wait_for(ring, 16), 1);
}

TEST(RingRegisteredFiles, WithoutATableNothingIsRegistered) {
  Ring ring(8);
  EXPECT_FALSE(ring.registered(0));
  EXPECT_FALSE(ring.register_files(0));
}

}  // namespace
}  // namespace ringmaster::io
