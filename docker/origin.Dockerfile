# The origin livegate relays to: Debian's nginx with libnginx-mod-rtmp.
FROM debian:bookworm-slim
RUN apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx libnginx-mod-rtmp \
  && rm -rf /var/lib/apt/lists/*
COPY docker/nginx-rtmp.conf /etc/nginx/nginx-rtmp.conf
EXPOSE 1935
CMD ["nginx", "-c", "/etc/nginx/nginx-rtmp.conf"]
