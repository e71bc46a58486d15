/* exporters/node/rtnl.c: one rtnetlink dump (RTM_GETLINK, RTM_GETNEIGH, ...)
 * for the collectors that read the kernel's tables rather than /proc
 * (netdev, arp with netlink = true). */
#include <errno.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "exporters/node/node.h"

int mw_node_rtnl_dump(uint16_t type, const void *body, size_t body_len,
                      int (*each)(const struct nlmsghdr *nh, void *ctx), void *ctx) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -1;
  size_t cap = 32768;
  char *buf = malloc(cap > NLMSG_SPACE(body_len) ? cap : NLMSG_SPACE(body_len));
  int done = 0, e = 0;
  if (!buf) {
    e = ENOMEM;
  } else {
    struct nlmsghdr *req = (struct nlmsghdr *)buf;
    memset(buf, 0, NLMSG_SPACE(body_len));
    req->nlmsg_len = (uint32_t)NLMSG_LENGTH(body_len);
    req->nlmsg_type = type;
    req->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req->nlmsg_seq = 1;
    memcpy(NLMSG_DATA(req), body, body_len);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if (sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) e = errno;
  }
  while (!e && !done) {
    ssize_t r = recv(fd, buf, cap, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      e = r < 0 ? errno : EIO;
      break;
    }
    for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)r);
         nh = NLMSG_NEXT(nh, r)) {
      if (nh->nlmsg_type == NLMSG_DONE) {
        done = 1;
        break;
      }
      if (nh->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *ne = NLMSG_DATA(nh);
        e = ne->error ? -ne->error : EIO;
        break;
      }
      if ((e = each(nh, ctx)) != 0) break;
    }
  }
  free(buf);
  close(fd);
  if (e) errno = e;
  return e ? -1 : 0;
}
