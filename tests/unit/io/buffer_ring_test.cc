#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "ringmaster/io/buffer_ring.h"
#include "ringmaster/io/ring.h"
#include "socket_pair.h"

namespace ringmaster::io {
namespace {

struct Piece {
  uint16_t id;
  std::string bytes;
};

// Multishot receives on `pairs` from `buffers`; each peer writes one message per round and the
// pieces received are collected (released only when the test says so).
std::vector<Piece> receive_rounds(Ring& ring, BufferRing& buffers, std::vector<SocketPair>& pairs,
                                  const std::vector<std::string>& messages) {
  for (size_t i = 0; i < pairs.size(); ++i) {
    io_uring_sqe* sqe = ring.get_sqe();
    io_uring_prep_recv_multishot(sqe, pairs[i].ours, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffers.group_id();
    io_uring_sqe_set_data64(sqe, i + 1);
  }
  ring.submit();
  std::vector<Piece> pieces;
  size_t expected = 0;
  for (const std::string& m : messages) {
    for (SocketPair& p : pairs) {
      EXPECT_EQ(::write(p.peer, m.data(), m.size()), static_cast<ssize_t>(m.size()));
      expected += m.size();
    }
    size_t got = 0;
    for (const Piece& piece : pieces) got += piece.bytes.size();
    for (int turn = 0; turn < 100 && got < expected; ++turn) {
      ring.submit_and_wait(100);
      ring.drain([&](io_uring_cqe* cqe) {
        if (cqe->res <= 0 || !(cqe->flags & IORING_CQE_F_BUFFER)) return;
        auto id = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        uint32_t offset = buffers.received(id, static_cast<uint32_t>(cqe->res), cqe->flags);
        pieces.push_back(Piece{id, std::string(buffers.buffer(id) + offset, static_cast<size_t>(cqe->res))});
        got += static_cast<size_t>(cqe->res);
      });
    }
  }
  return pieces;
}

TEST(BufferRing, SmallReceivesShareABufferWhenIncremental) {
  Ring ring(64);
  BufferRing buffers(ring, 0, 8, 4096);
  if (!buffers.incremental()) GTEST_SKIP() << "kernel without IOU_PBUF_RING_INC";
  std::vector<SocketPair> pairs(4);
  std::vector<std::string> messages = {"GET /a HTTP/1.1\r\n\r\n", "GET /bb HTTP/1.1\r\n\r\n"};
  std::vector<Piece> pieces = receive_rounds(ring, buffers, pairs, messages);
  ASSERT_EQ(pieces.size(), 8u);
  for (const Piece& p : pieces) {
    EXPECT_EQ(p.id, pieces.front().id);  // all eight in one buffer
    EXPECT_TRUE(p.bytes == messages[0] || p.bytes == messages[1]) << p.bytes;
  }
  EXPECT_EQ(buffers.available(), 8u);  // the kernel is still filling it
  for (const Piece& p : pieces) buffers.release(p.id);
}

TEST(BufferRing, ABufferGoesBackOnceTheKernelMovedPastItAndEveryPieceIsReleased) {
  Ring ring(64);
  BufferRing buffers(ring, 0, 4, 64);
  if (!buffers.incremental()) GTEST_SKIP() << "kernel without IOU_PBUF_RING_INC";
  std::vector<SocketPair> pairs(1);
  // 40 + 40 bytes into 64-byte buffers: the second message is split over two buffers.
  std::vector<std::string> messages = {std::string(40, 'a'), std::string(40, 'b')};
  std::vector<Piece> pieces = receive_rounds(ring, buffers, pairs, messages);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0].bytes, std::string(40, 'a'));
  EXPECT_EQ(pieces[1].bytes, std::string(24, 'b'));  // the rest of the first buffer
  EXPECT_EQ(pieces[2].bytes, std::string(16, 'b'));
  EXPECT_EQ(pieces[0].id, pieces[1].id);
  EXPECT_NE(pieces[1].id, pieces[2].id);
  EXPECT_EQ(buffers.available(), 3u);  // the first one is full, and still ours
  buffers.release(pieces[0].id);
  EXPECT_EQ(buffers.available(), 3u);  // one piece of it is still held
  buffers.release(pieces[1].id);
  EXPECT_EQ(buffers.available(), 4u);
  buffers.release(pieces[2].id);
}

TEST(BufferRing, ClassicModeTakesOneBufferPerReceive) {
  Ring ring(64);
  BufferRing buffers(ring, 0, 8, 4096, /*incremental=*/false);
  EXPECT_FALSE(buffers.incremental());
  std::vector<SocketPair> pairs(3);
  std::vector<Piece> pieces = receive_rounds(ring, buffers, pairs, {"hello"});
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_NE(pieces[0].id, pieces[1].id);
  EXPECT_EQ(buffers.available(), 5u);
  for (const Piece& p : pieces) buffers.release(p.id);
  EXPECT_EQ(buffers.available(), 8u);
}

}  // namespace
}  // namespace ringmaster::io
